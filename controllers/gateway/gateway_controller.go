// Package gateway reconciles gateways and AuthPolicies. A gateway is the set
// of Routes naming it in spec.gatewayRef: its reconciler compiles them into
// xDS for the gateway's proxies and reports each Route's status.
package gateway

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
	xdsserver "github.com/cairn-platform/cairn/dataplane/xds/server"
	"github.com/cairn-platform/cairn/dataplane/xds/translate"
	"github.com/cairn-platform/cairn/internal/conditions"
	"github.com/cairn-platform/cairn/internal/kube"
	"github.com/cairn-platform/cairn/internal/telemetry"
)

// routeGatewayIndex indexes Routes by spec.gatewayRef.name.
const routeGatewayIndex = "route.spec.gatewayRef.name"

// Condition reasons set on Routes besides the translator's.
const (
	ReasonAccepted    = "Accepted"
	ReasonNotAccepted = "NotAccepted"
)

// GatewayReconciler compiles the Routes of one gateway into xDS resources,
// publishes them, and writes each Route's Accepted, Programmed and Ready.
type GatewayReconciler struct {
	client.Client
	Recorder events.EventRecorder
	XDS      *xdsserver.Server
	Options  translate.Options
	// Elected is closed once this replica leads. Every replica serves xDS to
	// the proxies connected to it; only the leader writes status.
	Elected <-chan struct{}

	changes chan event.GenericEvent
}

// +kubebuilder:rbac:groups=gateway.cairn.dev,resources=routes;authpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.cairn.dev,resources=routes/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=services;configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups=serverless.cairn.dev,resources=functions,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile translates and publishes one gateway; req.Name is the gateway.
func (r *GatewayReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	gateway := req.Name
	var routes gatewayv1alpha1.RouteList
	if err := r.List(ctx, &routes, client.MatchingFields{routeGatewayIndex: gateway}); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing Routes of gateway %s: %w", gateway, err)
	}
	in, err := r.input(ctx, gateway, routes.Items)
	if err != nil {
		return ctrl.Result{}, err
	}
	_, span := otel.Tracer("github.com/cairn-platform/cairn/controllers").Start(ctx, "translate.Translate")
	span.SetAttributes(attribute.String("cairn.gateway", gateway), attribute.Int("cairn.routes", len(routes.Items)))
	res := translate.Translate(in)
	span.End()
	if err := r.XDS.SetGateway(ctx, gateway, res); err != nil {
		return ctrl.Result{}, fmt.Errorf("publishing gateway %s: %w", gateway, err)
	}
	if !r.leading() {
		return ctrl.Result{}, nil
	}
	for i := range routes.Items {
		if err := r.writeStatus(ctx, gateway, &routes.Items[i], res.Routes[client.ObjectKeyFromObject(&routes.Items[i])]); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, nil
}

func (r *GatewayReconciler) leading() bool {
	select {
	case <-r.Elected:
		return true
	default:
		return false
	}
}

// input gathers what the gateway's Routes can reference: objects in their
// namespaces (cross-namespace references are not allowed).
func (r *GatewayReconciler) input(ctx context.Context, gateway string, routes []gatewayv1alpha1.Route) (*translate.Input, error) {
	in := &translate.Input{Gateway: gateway, Routes: routes, Options: r.Options, Excluded: r.XDS.Excluded(gateway)}
	namespaces := map[string]bool{}
	descriptors := map[types.NamespacedName]bool{}
	for _, rt := range routes {
		namespaces[rt.Namespace] = true
		for _, rule := range rt.Spec.Rules {
			if t := rule.GRPCTranscoding; t != nil {
				descriptors[types.NamespacedName{Namespace: rt.Namespace, Name: t.DescriptorSet.Name}] = true
			}
		}
	}
	for ns := range namespaces {
		var (
			svcs     corev1.ServiceList
			slices   discoveryv1.EndpointSliceList
			fns      serverlessv1alpha1.FunctionList
			policies gatewayv1alpha1.AuthPolicyList
		)
		for _, l := range []client.ObjectList{&svcs, &slices, &fns, &policies} {
			if err := r.List(ctx, l, client.InNamespace(ns)); err != nil {
				return nil, fmt.Errorf("listing %T in %s: %w", l, ns, err)
			}
		}
		in.Services = append(in.Services, svcs.Items...)
		in.EndpointSlices = append(in.EndpointSlices, slices.Items...)
		in.Functions = append(in.Functions, fns.Items...)
		in.AuthPolicies = append(in.AuthPolicies, policies.Items...)
	}
	for key := range descriptors {
		var cm corev1.ConfigMap
		found, err := kube.GetIfExists(ctx, r.Client, key, &cm)
		if err != nil {
			return nil, err
		}
		if found {
			in.ConfigMaps = append(in.ConfigMaps, cm)
		}
	}
	return in, nil
}

func (r *GatewayReconciler) writeStatus(ctx context.Context, gateway string, route *gatewayv1alpha1.Route, res translate.RouteResult) error {
	base := route.DeepCopy()
	gen := route.Generation
	conds := &route.Status.Conditions
	if res.Err != nil {
		reason, msg := string(res.Reason), strings.ReplaceAll(res.Err.Error(), "\n", "; ")
		conditions.False(conds, gen, common.ConditionAccepted, reason, msg)
		conditions.False(conds, gen, common.ConditionProgrammed, ReasonNotAccepted, "the route is not accepted, so it is not sent to the proxies")
		conditions.False(conds, gen, common.ConditionReady, reason, msg)
		if conditions.IsTrue(base.Status.Conditions, common.ConditionAccepted) || base.Status.ObservedGeneration != gen {
			kube.Warn(r.Recorder, route, reason, "Translate", msg)
		}
	} else {
		conditions.True(conds, gen, common.ConditionAccepted, ReasonAccepted, "the route is valid and its references resolve")
		ok, reason, msg := r.XDS.Programmed(gateway, client.ObjectKeyFromObject(route), gen)
		status := metav1.ConditionFalse
		if ok {
			status = metav1.ConditionTrue
		}
		conditions.Set(conds, gen, common.ConditionProgrammed, status, reason, msg)
		conditions.Set(conds, gen, common.ConditionReady, status, reason, msg)
		if reason == "Rejected" && !strings.Contains(conditionMessage(base.Status.Conditions, common.ConditionProgrammed), msg) {
			kube.Warn(r.Recorder, route, reason, "Program", msg)
		}
	}
	route.Status.ObservedGeneration = gen
	return kube.PatchStatus(ctx, r.Client, route, base)
}

func conditionMessage(conds []metav1.Condition, typ string) string {
	for _, c := range conds {
		if c.Type == typ {
			return c.Message
		}
	}
	return ""
}

// NotifyXDSChange queues the gateway after its proxies acknowledged,
// rejected, connected or left; wire it as the xDS server's change callback.
func (r *GatewayReconciler) NotifyXDSChange(gateway string) {
	obj := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: gateway}}
	select {
	case r.changes <- event.GenericEvent{Object: obj}:
	default: // A full queue already holds a reconcile of every busy gateway.
	}
}

// NewGatewayReconciler prepares the change channel before the xDS server
// can call NotifyXDSChange.
func NewGatewayReconciler(r GatewayReconciler) *GatewayReconciler {
	r.changes = make(chan event.GenericEvent, 1024)
	return &r
}

// SetupWithManager registers the reconciler. It runs on every replica (each
// serves its own proxies); the leader alone writes status.
func (r *GatewayReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &gatewayv1alpha1.Route{}, routeGatewayIndex, func(o client.Object) []string {
		return []string{o.(*gatewayv1alpha1.Route).Spec.GatewayRef.Name}
	}); err != nil {
		return fmt.Errorf("indexing Routes by gateway: %w", err)
	}
	byNamespace := handler.EnqueueRequestsFromMapFunc(r.gatewaysInNamespace)
	notLeaderOnly := false
	return ctrl.NewControllerManagedBy(mgr).
		Named("gateway").
		WithOptions(controller.Options{NeedLeaderElection: &notLeaderOnly, MaxConcurrentReconciles: 2}).
		Watches(&gatewayv1alpha1.Route{}, routeGatewayHandler{}).
		Watches(&gatewayv1alpha1.AuthPolicy{}, byNamespace).
		Watches(&corev1.Service{}, byNamespace).
		Watches(&discoveryv1.EndpointSlice{}, byNamespace).
		Watches(&serverlessv1alpha1.Function{}, byNamespace).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.gatewaysUsingDescriptor)).
		WatchesRawSource(source.Channel(r.changes, &handler.EnqueueRequestForObject{})).
		Complete(telemetry.TraceReconciler("Gateway", r))
}

// gatewaysInNamespace maps an object to the gateways of the Routes in its
// namespace: those are the only Routes that may reference it.
func (r *GatewayReconciler) gatewaysInNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	var routes gatewayv1alpha1.RouteList
	if err := r.List(ctx, &routes, client.InNamespace(obj.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing Routes", "namespace", obj.GetNamespace())
		return nil
	}
	return gatewayRequests(routes.Items, func(gatewayv1alpha1.Route) bool { return true })
}

func (r *GatewayReconciler) gatewaysUsingDescriptor(ctx context.Context, obj client.Object) []reconcile.Request {
	var routes gatewayv1alpha1.RouteList
	if err := r.List(ctx, &routes, client.InNamespace(obj.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing Routes", "namespace", obj.GetNamespace())
		return nil
	}
	return gatewayRequests(routes.Items, func(rt gatewayv1alpha1.Route) bool {
		for _, rule := range rt.Spec.Rules {
			if rule.GRPCTranscoding != nil && rule.GRPCTranscoding.DescriptorSet.Name == obj.GetName() {
				return true
			}
		}
		return false
	})
}

func gatewayRequests(routes []gatewayv1alpha1.Route, keep func(gatewayv1alpha1.Route) bool) []reconcile.Request {
	seen := map[string]bool{}
	var reqs []reconcile.Request
	for _, rt := range routes {
		gw := rt.Spec.GatewayRef.Name
		if keep(rt) && !seen[gw] {
			seen[gw] = true
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: gw}})
		}
	}
	return reqs
}
