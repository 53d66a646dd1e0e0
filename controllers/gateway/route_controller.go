// Package gateway reconciles Routes and AuthPolicies: it validates them and
// resolves their references, and reports the result in status.
package gateway

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
	"github.com/cairn-platform/cairn/internal/conditions"
	"github.com/cairn-platform/cairn/internal/kube"
	"github.com/cairn-platform/cairn/internal/telemetry"
)

// Field indexes on Routes, by the name of what they reference.
const (
	routeServiceIndex    = "route.spec.backends.service"
	routeFunctionIndex   = "route.spec.backends.function"
	routeConfigMapIndex  = "route.spec.grpcTranscoding.descriptorSet"
	routeAuthPolicyIndex = "route.spec.authPolicyRef"
)

// Condition reasons for Routes.
const (
	ReasonAccepted         = "Accepted"
	ReasonInvalid          = "Invalid"
	ReasonBackendNotFound  = "BackendNotFound"
	ReasonRefNotFound      = "RefNotFound"
	ReasonPending          = "Pending"
	ReasonNotAccepted      = "NotAccepted"
	ReasonDescriptorMissed = "DescriptorNotFound"
)

// RouteReconciler validates Routes and resolves their backends, auth policy
// and transcoding descriptors.
type RouteReconciler struct {
	client.Client
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=gateway.cairn.dev,resources=routes,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.cairn.dev,resources=routes/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=services;configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=serverless.cairn.dev,resources=functions,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile checks one Route and records Accepted, Programmed and Ready.
func (r *RouteReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var route gatewayv1alpha1.Route
	if err := r.Get(ctx, req.NamespacedName, &route); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	base := route.DeepCopy()
	gen := route.Generation
	conds := &route.Status.Conditions

	reason, problems, err := r.check(ctx, &route)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(problems) > 0 {
		msg := strings.Join(problems, "; ")
		conditions.False(conds, gen, common.ConditionAccepted, reason, msg)
		conditions.False(conds, gen, common.ConditionProgrammed, ReasonNotAccepted, "the route is not accepted, so it is not sent to the gateway")
		conditions.False(conds, gen, common.ConditionReady, reason, msg)
		if conditions.IsTrue(base.Status.Conditions, common.ConditionAccepted) || base.Status.ObservedGeneration != gen {
			kube.Warn(r.Recorder, &route, reason, "Validate", msg)
		}
	} else {
		conditions.True(conds, gen, common.ConditionAccepted, ReasonAccepted, "the route is valid and its references resolve")
		if !conditions.IsTrue(*conds, common.ConditionProgrammed) {
			msg := fmt.Sprintf("waiting for the proxies of gateway %q to acknowledge the configuration", route.Spec.GatewayRef.Name)
			conditions.False(conds, gen, common.ConditionProgrammed, ReasonPending, msg)
			conditions.False(conds, gen, common.ConditionReady, ReasonPending, msg)
		}
	}
	route.Status.ObservedGeneration = gen
	return ctrl.Result{}, kube.PatchStatus(ctx, r.Client, &route, base)
}

// check returns the reason and the human-readable problems that keep the
// route from being accepted; err is only for failures to ask the API server.
func (r *RouteReconciler) check(ctx context.Context, route *gatewayv1alpha1.Route) (string, []string, error) {
	if problems := routeSyntaxErrors(route); len(problems) > 0 {
		return ReasonInvalid, problems, nil
	}
	ns := route.Namespace
	var problems []string
	reason := ReasonBackendNotFound
	for i, rule := range route.Spec.Rules {
		for j, b := range rule.Backends {
			where := fmt.Sprintf("rules[%d].backends[%d]", i, j)
			switch {
			case b.Service != nil:
				p, err := r.checkService(ctx, ns, b.Service)
				if err != nil {
					return "", nil, err
				}
				if p != "" {
					problems = append(problems, where+": "+p)
				}
			case b.Function != nil:
				found, err := kube.GetIfExists(ctx, r.Client, types.NamespacedName{Namespace: ns, Name: b.Function.Name}, &serverlessv1alpha1.Function{})
				if err != nil {
					return "", nil, err
				}
				if !found {
					problems = append(problems, fmt.Sprintf("%s: Function %q not found", where, b.Function.Name))
				}
			}
		}
		if t := rule.GRPCTranscoding; t != nil {
			p, err := r.checkDescriptor(ctx, ns, t.DescriptorSet)
			if err != nil {
				return "", nil, err
			}
			if p != "" {
				problems = append(problems, fmt.Sprintf("rules[%d].grpcTranscoding: %s", i, p))
				reason = ReasonDescriptorMissed
			}
		}
	}
	if ref := route.Spec.AuthPolicyRef; ref != nil {
		found, err := kube.GetIfExists(ctx, r.Client, types.NamespacedName{Namespace: ns, Name: ref.Name}, &gatewayv1alpha1.AuthPolicy{})
		if err != nil {
			return "", nil, err
		}
		if !found {
			problems = append(problems, fmt.Sprintf("authPolicyRef: AuthPolicy %q not found", ref.Name))
			reason = ReasonRefNotFound
		}
	}
	return reason, problems, nil
}

func (r *RouteReconciler) checkService(ctx context.Context, ns string, b *gatewayv1alpha1.ServiceBackend) (string, error) {
	var svc corev1.Service
	found, err := kube.GetIfExists(ctx, r.Client, types.NamespacedName{Namespace: ns, Name: b.Name}, &svc)
	if err != nil || !found {
		return fmt.Sprintf("Service %q not found", b.Name), err
	}
	for _, p := range svc.Spec.Ports {
		if p.Port == b.Port {
			return "", nil
		}
	}
	return fmt.Sprintf("Service %q has no port %d", b.Name, b.Port), nil
}

func (r *RouteReconciler) checkDescriptor(ctx context.Context, ns string, sel common.KeySelector) (string, error) {
	var cm corev1.ConfigMap
	found, err := kube.GetIfExists(ctx, r.Client, types.NamespacedName{Namespace: ns, Name: sel.Name}, &cm)
	if err != nil || !found {
		return fmt.Sprintf("descriptor ConfigMap %q not found", sel.Name), err
	}
	if _, ok := cm.BinaryData[sel.Key]; !ok {
		return fmt.Sprintf("ConfigMap %q has no binaryData key %q", sel.Name, sel.Key), nil
	}
	return "", nil
}

// SetupWithManager registers the reconciler and the watches that re-check a
// Route when something it references changes.
func (r *RouteReconciler) SetupWithManager(mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	ctx := context.Background()
	indexes := map[string]func(*gatewayv1alpha1.Route) []string{
		routeServiceIndex: func(rt *gatewayv1alpha1.Route) []string {
			return backendNames(rt, func(b gatewayv1alpha1.Backend) string {
				if b.Service != nil {
					return b.Service.Name
				}
				return ""
			})
		},
		routeFunctionIndex: func(rt *gatewayv1alpha1.Route) []string {
			return backendNames(rt, func(b gatewayv1alpha1.Backend) string {
				if b.Function != nil {
					return b.Function.Name
				}
				return ""
			})
		},
		routeConfigMapIndex: func(rt *gatewayv1alpha1.Route) []string {
			var names []string
			for _, rule := range rt.Spec.Rules {
				if rule.GRPCTranscoding != nil {
					names = append(names, rule.GRPCTranscoding.DescriptorSet.Name)
				}
			}
			return names
		},
		routeAuthPolicyIndex: func(rt *gatewayv1alpha1.Route) []string {
			if rt.Spec.AuthPolicyRef == nil {
				return nil
			}
			return []string{rt.Spec.AuthPolicyRef.Name}
		},
	}
	for name, fn := range indexes {
		if err := idx.IndexField(ctx, &gatewayv1alpha1.Route{}, name, func(o client.Object) []string {
			return fn(o.(*gatewayv1alpha1.Route))
		}); err != nil {
			return fmt.Errorf("indexing Routes by %s: %w", name, err)
		}
	}
	c := mgr.GetClient()
	list := &gatewayv1alpha1.RouteList{}
	return ctrl.NewControllerManagedBy(mgr).
		For(&gatewayv1alpha1.Route{}).
		Watches(&corev1.Service{}, kube.EnqueueReferrers(c, list, routeServiceIndex)).
		Watches(&serverlessv1alpha1.Function{}, kube.EnqueueReferrers(c, list, routeFunctionIndex)).
		Watches(&corev1.ConfigMap{}, kube.EnqueueReferrers(c, list, routeConfigMapIndex)).
		Watches(&gatewayv1alpha1.AuthPolicy{}, kube.EnqueueReferrers(c, list, routeAuthPolicyIndex)).
		Named("route").
		Complete(telemetry.TraceReconciler("Route", r))
}

func backendNames(rt *gatewayv1alpha1.Route, name func(gatewayv1alpha1.Backend) string) []string {
	var names []string
	for _, rule := range rt.Spec.Rules {
		for _, b := range rule.Backends {
			if n := name(b); n != "" {
				names = append(names, n)
			}
		}
	}
	return names
}
