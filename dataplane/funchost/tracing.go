package funchost

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const (
	tracerName     = "github.com/cairn-platform/cairn/dataplane/funchost"
	invokeSpanName = "funchost.Invoke"
	// Span attributes of an invocation.
	attrFunction = attribute.Key("cairn.function")
	attrResult   = attribute.Key("cairn.function.result")
)

// startInvokeSpan starts the span of one invocation as a child of the span
// in ctx, if any.
func (f *Function) startInvokeSpan(ctx context.Context) (context.Context, trace.Span) {
	ctx, span := f.tracer.Start(ctx, invokeSpanName)
	if span.IsRecording() {
		span.SetAttributes(attrFunction.String(f.name))
	}
	return ctx, span
}

// endInvokeSpan records the result; error detail only goes to the span
// status, as the trace stays within the platform.
func endInvokeSpan(span trace.Span, res string, err error) {
	if span.IsRecording() {
		span.SetAttributes(attrResult.String(res))
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}

// extractTrace joins the trace of the caller (a gateway) from W3C
// traceparent headers, with the global propagator.
func extractTrace(r *http.Request) context.Context {
	return otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
}
