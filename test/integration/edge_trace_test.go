package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestEdgeTraceContext: one trace runs from the EdgeHub reconcile through
// the hub to the agent when the spec changes, and from the agent's write to
// the hub's merge when the device reports; the context crosses MQTT in
// user properties.
func TestEdgeTraceContext(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(context.Background()) })

	e := startEdge(t)
	token := e.device(t, "cam", map[string]string{"fps": "10"})
	a, _ := e.agent(t, "cam", token, t.TempDir(), e.hubAddr)
	waitDesired(t, a.Desired, "fps", "10")

	updateDesired(t, e.ns, "cam", map[string]string{"fps": "25"})
	waitDesired(t, a.Desired, "fps", "25")
	eventually(t, 10*time.Second, func(context.Context) error {
		return parentChain(rec.Ended(), "edge-agent.ApplyTwin", "edgehub.SyncSpec", "EdgeHub.Reconcile")
	})

	if err := a.SetReported(context.Background(), "lux", json.RawMessage(`300`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func(context.Context) error {
		return parentChain(rec.Ended(), "edgehub.MergeTwin", "edge-agent.WriteTwin")
	})
}

// parentChain finds a span named chain[0] whose parent is named chain[1],
// whose parent is chain[2], and so on, all in one trace.
func parentChain(spans []sdktrace.ReadOnlySpan, chain ...string) error {
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID().String()] = s
	}
next:
	for _, s := range spans {
		if s.Name() != chain[0] {
			continue
		}
		cur := s
		for _, want := range chain[1:] {
			p, ok := byID[cur.Parent().SpanID().String()]
			if !ok || p.Name() != want || p.SpanContext().TraceID() != s.SpanContext().TraceID() {
				continue next
			}
			cur = p
		}
		return nil
	}
	var names []string
	for _, s := range spans {
		names = append(names, fmt.Sprintf("%s(parent %s)", s.Name(), s.Parent().SpanID()))
	}
	return fmt.Errorf("no span chain %v among %v", chain, names)
}
