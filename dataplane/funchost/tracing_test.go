package funchost

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr/testr"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestHandlerJoinsIncomingTrace sends a traceparent, as the gateway does, and
// expects the invocation's span in that trace, child of the sender's span.
func TestHandlerJoinsIncomingTrace(t *testing.T) {
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })

	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	h, err := New(context.Background(), Options{CacheDir: cacheDir, Logger: testr.New(t), TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	f, err := h.Load(context.Background(), "traced", goGuest, Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler{Function: f})
	defer srv.Close()

	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		spanID  = "00f067aa0ba902b7"
	)
	for _, path := range []string{"/echo", "/grow"} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+path, strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Traceparent", "00-"+traceID+"-"+spanID+"-01")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	spans := recorder.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	for i, want := range []string{resultOK, resultTrap} {
		s := spans[i]
		if s.Name() != invokeSpanName {
			t.Errorf("span name %q, want %q", s.Name(), invokeSpanName)
		}
		if got := s.SpanContext().TraceID().String(); got != traceID {
			t.Errorf("trace ID %s, want the incoming %s", got, traceID)
		}
		if got := s.Parent().SpanID().String(); got != spanID || !s.Parent().IsRemote() {
			t.Errorf("parent %s (remote %t), want the incoming %s", got, s.Parent().IsRemote(), spanID)
		}
		attrs := map[string]string{}
		for _, kv := range s.Attributes() {
			attrs[string(kv.Key)] = kv.Value.String()
		}
		if attrs[string(attrFunction)] != "traced" || attrs[string(attrResult)] != want {
			t.Errorf("span %d attributes %v, want function traced and result %s", i, attrs, want)
		}
	}
}

// TestInvokeSpanIsChildOfContext: callers other than Handler pass their span
// in the context.
func TestInvokeSpanIsChildOfContext(t *testing.T) {
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	h, err := New(context.Background(), Options{CacheDir: cacheDir, Logger: testr.New(t), TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	f, err := h.Load(context.Background(), "small", echoReactor(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, parent := tp.Tracer("test").Start(context.Background(), "parent")
	if _, err := f.Invoke(ctx, Request{Path: "/"}); err != nil {
		t.Fatal(err)
	}
	parent.End()
	var child sdktrace.ReadOnlySpan
	for _, s := range recorder.Ended() {
		if s.Name() == invokeSpanName {
			child = s
		}
	}
	if child == nil {
		t.Fatal("no invocation span")
	}
	if child.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("parent %s, want %s", child.Parent().SpanID(), parent.SpanContext().SpanID())
	}
}
