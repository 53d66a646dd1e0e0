package telemetry

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// collector is a real OTLP/gRPC trace receiver on loopback.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
	attrs map[string]string // resource attributes of the last export
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		c.attrs = map[string]string{}
		for _, kv := range rs.Resource.Attributes {
			c.attrs[kv.Key] = kv.Value.GetStringValue()
		}
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func TestReconcileSpansReachAnOTLPCollector(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	col := &collector{}
	collectortrace.RegisterTraceServiceServer(srv, col)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	ctx := context.Background()
	// The URL form of OTEL_EXPORTER_OTLP_ENDPOINT; http:// means plaintext.
	shutdown, err := Setup(ctx, Config{ServiceName: "cairn-test", ServiceVersion: "v9.9.9", OTLPEndpoint: "http://" + lis.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer otel.SetTracerProvider(otel.GetTracerProvider())

	failing := errors.New("backend exploded")
	var innerSpanValid bool
	r := TraceReconciler("Route", reconcile.Func(func(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
		// Work done inside the reconcile joins the reconcile's trace.
		_, child := otel.Tracer("test").Start(ctx, "translate")
		innerSpanValid = child.SpanContext().IsValid()
		child.End()
		return ctrl.Result{}, failing
	}))
	req := ctrl.Request{}
	req.Namespace, req.Name = "shop", "checkout"
	if _, err := r.Reconcile(ctx, req); !errors.Is(err, failing) {
		t.Fatalf("reconcile error = %v, want it passed through", err)
	}
	if err := shutdown(ctx); err != nil { // flushes the batcher
		t.Fatal(err)
	}

	col.mu.Lock()
	defer col.mu.Unlock()
	if !innerSpanValid || len(col.spans) != 2 {
		t.Fatalf("collector got %d spans, want reconcile + child", len(col.spans))
	}
	byName := map[string]*tracepb.Span{}
	for _, s := range col.spans {
		byName[s.Name] = s
	}
	parent, child := byName["Route.Reconcile"], byName["translate"]
	if parent == nil || child == nil {
		t.Fatalf("spans = %v", col.spans)
	}
	if string(child.ParentSpanId) != string(parent.SpanId) || string(child.TraceId) != string(parent.TraceId) {
		t.Error("the child span is not in the reconcile's trace")
	}
	if parent.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || parent.Status.GetMessage() != "backend exploded" {
		t.Errorf("reconcile span status = %v, want the error", parent.Status)
	}
	attrs := map[string]string{}
	for _, kv := range parent.Attributes {
		attrs[kv.Key] = kv.Value.GetStringValue()
	}
	if attrs["k8s.namespace.name"] != "shop" || attrs["cairn.object.name"] != "checkout" {
		t.Errorf("span attributes = %v", attrs)
	}
	if col.attrs["service.name"] != "cairn-test" || col.attrs["service.version"] != "v9.9.9" {
		t.Errorf("resource attributes = %v", col.attrs)
	}
}

func TestSetupWithoutEndpointExportsNothing(t *testing.T) {
	shutdown, err := Setup(context.Background(), Config{ServiceName: "cairn-test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// Spans still propagate in-process (valid IDs) with no exporter attached.
	_, span := otel.Tracer("test").Start(ctx, "x")
	if !span.SpanContext().IsValid() {
		t.Error("spans must be recorded even without an exporter, for propagation")
	}
	span.End()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
