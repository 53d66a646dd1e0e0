package kube

import (
	"context"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// EnqueueReferrers maps an object to the objects of list's kind in the same
// namespace that reference it by name through the field index `index`.
// Reconcilers use it to re-check references when a Service, Secret or
// ConfigMap they point at appears, changes or goes away.
func EnqueueReferrers(c client.Client, list client.ObjectList, index string) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
		referrers := list.DeepCopyObject().(client.ObjectList)
		if err := c.List(ctx, referrers, client.InNamespace(obj.GetNamespace()), client.MatchingFields{index: obj.GetName()}); err != nil {
			log.FromContext(ctx).Error(err, "listing referrers", "index", index, "object", client.ObjectKeyFromObject(obj))
			return nil
		}
		var reqs []reconcile.Request
		_ = meta.EachListItem(referrers, func(o runtime.Object) error {
			if m, err := meta.Accessor(o); err == nil {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetName()}})
			}
			return nil
		})
		return reqs
	})
}
