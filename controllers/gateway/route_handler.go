package gateway

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
)

// routeGatewayHandler queues the gateway a Route belongs to, and on an update
// that moves the Route, the gateway it left too.
type routeGatewayHandler struct{}

var _ handler.EventHandler = routeGatewayHandler{}

func enqueueGateway(q workqueue.TypedRateLimitingInterface[reconcile.Request], obj any) {
	if rt, ok := obj.(*gatewayv1alpha1.Route); ok {
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: rt.Spec.GatewayRef.Name}})
	}
}

func (routeGatewayHandler) Create(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	enqueueGateway(q, e.Object)
}

func (routeGatewayHandler) Update(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	enqueueGateway(q, e.ObjectOld)
	enqueueGateway(q, e.ObjectNew)
}

func (routeGatewayHandler) Delete(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	enqueueGateway(q, e.Object)
}

func (routeGatewayHandler) Generic(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	enqueueGateway(q, e.Object)
}
