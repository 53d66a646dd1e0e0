package authz

import (
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestCheckSpanJoinsEnvoysTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	d := newIDP(t)
	p := d.policy()
	p.Breaker.FailureThreshold = 1
	h := newHarness(t, map[string]Policy{shop: p}, WithTracerProvider(tp))
	d.active("tk_ada", "ada", "", h.clock.Now().Add(time.Hour))
	d.fail("tk_broken", http.StatusInternalServerError)

	const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	req := h.request(shop, "acme", "tk_ada")
	req.Attributes.Request.Http.Headers["traceparent"] = "00-" + traceID + "-" + parentID + "-01"
	if _, err := h.client.Check(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	h.check(shop, "globex", "tk_broken")

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans ended, want 2", len(spans))
	}
	ok, failed := spans[0], spans[1]
	if ok.Name() != "authz.Check" || ok.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q of kind %v, want authz.Check, server", ok.Name(), ok.SpanKind())
	}
	if got := ok.SpanContext().TraceID().String(); got != traceID {
		t.Errorf("trace ID = %s, want Envoy's %s", got, traceID)
	}
	if got := ok.Parent(); got.SpanID().String() != parentID || !got.IsRemote() {
		t.Errorf("parent = %v, want Envoy's remote span %s", got.SpanID(), parentID)
	}
	wantAttrs(t, ok, map[attribute.Key]string{attrPolicy: shop, attrTenant: "acme", attrResult: resultAllowed})
	if ok.Status().Code == codes.Error {
		t.Error("an allowed check is marked as an error")
	}

	if failed.Parent().IsValid() {
		t.Error("a check without traceparent has a parent")
	}
	wantAttrs(t, failed, map[attribute.Key]string{attrTenant: "globex", attrResult: resultFailureDenied})
	if failed.Status().Code != codes.Error || len(failed.Events()) == 0 {
		t.Errorf("a failed introspection left status %v and %d events, want an error recorded", failed.Status(), len(failed.Events()))
	}
}

func wantAttrs(t *testing.T, span sdktrace.ReadOnlySpan, want map[attribute.Key]string) {
	t.Helper()
	got := map[attribute.Key]string{}
	for _, kv := range span.Attributes() {
		got[kv.Key] = kv.Value.AsString()
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("span attribute %s = %q, want %q", k, got[k], v)
		}
	}
}
