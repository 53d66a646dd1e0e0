package edgehub

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
	"github.com/cairn-platform/cairn/internal/kube"
	"github.com/cairn-platform/cairn/internal/telemetry"
)

// Reconciler keeps the hub in step with EdgeDevices: spec.desired edits and
// OTA assignments go to the device, a deleted or replaced credential
// disconnects it.
type Reconciler struct {
	Hub *Hub
}

// +kubebuilder:rbac:groups=edge.cairn.dev,resources=edgedevices,verbs=get;list;watch
// +kubebuilder:rbac:groups=edge.cairn.dev,resources=edgedevices/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update

// Reconcile syncs one device.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	dev := protocol.Device{Namespace: req.Namespace, Name: req.Name}
	var obj edgev1alpha1.EdgeDevice
	found, err := kube.GetIfExists(ctx, r.Hub.opts.Client, req.NamespacedName, &obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !found || obj.DeletionTimestamp != nil {
		r.Hub.Forget(dev)
		return ctrl.Result{}, nil
	}
	if err := r.Hub.enforceCredential(ctx, dev); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.Hub.SyncSpec(ctx, &obj)
}

// SetupWithManager registers the reconciler and the hub itself.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.Add(r.Hub); err != nil {
		return err
	}
	credentialOwner := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		name, ok := strings.CutSuffix(o.GetName(), "-credentials")
		if !ok || o.GetLabels()[deviceLabel] != name {
			return nil
		}
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: name}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		// Devices are independent; a fleet's joins and spec changes must
		// not queue behind one worker.
		WithOptions(controller.Options{MaxConcurrentReconciles: 8}).
		For(&edgev1alpha1.EdgeDevice{}, builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.Secret{}, credentialOwner).
		Named("edgehub").
		Complete(telemetry.TraceReconciler("EdgeHub", r))
}
