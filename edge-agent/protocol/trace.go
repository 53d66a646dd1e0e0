package protocol

import (
	"context"

	"github.com/eclipse/paho.golang/paho"
	"go.opentelemetry.io/otel/propagation"
)

// Trace context travels in MQTT v5 user properties ("traceparent",
// "tracestate"), as in the W3C Trace Context MQTT binding draft, so a span
// on one side continues the trace of the other: reconcile → hub → agent,
// and agent → hub.
var traceContext = propagation.TraceContext{}

// InjectTrace returns the user properties carrying ctx's span, if any.
func InjectTrace(ctx context.Context) map[string]string {
	c := propagation.MapCarrier{}
	traceContext.Inject(ctx, c)
	return c
}

// ExtractTrace returns ctx with the remote span of props (a user property
// lookup) as parent.
func ExtractTrace(ctx context.Context, props map[string]string) context.Context {
	if len(props) == 0 {
		return ctx
	}
	return traceContext.Extract(ctx, propagation.MapCarrier(props))
}

// TraceProperties returns PUBLISH properties carrying ctx's trace context.
func TraceProperties(ctx context.Context) *paho.PublishProperties {
	p := &paho.PublishProperties{}
	for k, v := range InjectTrace(ctx) {
		p.User = append(p.User, paho.UserProperty{Key: k, Value: v})
	}
	return p
}

// TraceFromPublish returns a context whose parent is the trace context a
// received PUBLISH carries, if any.
func TraceFromPublish(p *paho.Publish) context.Context {
	props := map[string]string{}
	if p.Properties != nil {
		for _, u := range p.Properties.User {
			props[u.Key] = u.Value
		}
	}
	return ExtractTrace(context.Background(), props)
}
