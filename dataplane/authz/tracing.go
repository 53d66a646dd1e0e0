package authz

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const tracerName = "github.com/cairn-platform/cairn/dataplane/authz"

// Span attributes of a check.
const (
	attrPolicy = attribute.Key("cairn.policy")
	attrTenant = attribute.Key("cairn.tenant")
	attrResult = attribute.Key("cairn.authz.result")
)

// traceContext reads W3C traceparent/tracestate explicitly rather than via
// the global propagator, which is a no-op unless the process configured one:
// a check must join Envoy's trace either way.
var traceContext = propagation.TraceContext{}

// startCheckSpan starts the span of one check as a child of the request's
// trace, if Envoy sent one.
func startCheckSpan(ctx context.Context, tracer trace.Tracer, h requestHeaders) (context.Context, trace.Span) {
	ctx = traceContext.Extract(ctx, h)
	return tracer.Start(ctx, "authz.Check", trace.WithSpanKind(trace.SpanKindServer))
}
