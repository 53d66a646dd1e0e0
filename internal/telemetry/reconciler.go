package telemetry

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

const tracerName = "github.com/cairn-platform/cairn/controllers"

// TraceReconciler runs every reconcile of r inside a span named
// "<kind>.Reconcile", so reconcile → translation → data plane spans share one
// trace.
func TraceReconciler(kind string, r reconcile.Reconciler) reconcile.Reconciler {
	spanName := kind + ".Reconcile"
	return reconcile.Func(func(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
		ctx, span := otel.Tracer(tracerName).Start(ctx, spanName)
		defer span.End()
		span.SetAttributes(
			attribute.String("k8s.namespace.name", req.Namespace),
			attribute.String("cairn.object.name", req.Name),
		)
		res, err := r.Reconcile(ctx, req)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		return res, err
	})
}
