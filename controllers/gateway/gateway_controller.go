// Package gateway reconciles gateways and AuthPolicies. A gateway is the set
// of Routes naming it in spec.gatewayRef: its reconciler compiles them into
// xDS for the gateway's proxies and reports each Route's status.
package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/sync/errgroup"

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

// statusWriters bounds concurrent Route status patches per reconcile.
const statusWriters = 8

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
	mu      sync.Mutex
	last    map[string]translation // by gateway
}

// translation is the last published result for a gateway and what it was
// computed from.
type translation struct {
	fingerprint string
	result      *translate.Result
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
	res, err := r.translate(ctx, gateway, in)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !r.leading() {
		return ctrl.Result{}, nil
	}
	// Status writes are independent requests; a few in flight keep a large
	// gateway's first reconcile from taking a round trip per Route.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(statusWriters)
	for i := range routes.Items {
		rt := &routes.Items[i]
		g.Go(func() error { return r.writeStatus(gctx, gateway, rt, res.Routes[client.ObjectKeyFromObject(rt)]) })
	}
	return ctrl.Result{}, g.Wait()
}

// translate compiles and publishes the gateway, unless nothing it depends on
// changed since the last time (proxy acknowledgements also queue the
// gateway, and then only status needs refreshing).
func (r *GatewayReconciler) translate(ctx context.Context, gateway string, in *translate.Input) (*translate.Result, error) {
	fp := fingerprint(in)
	r.mu.Lock()
	last, ok := r.last[gateway]
	r.mu.Unlock()
	if ok && last.fingerprint == fp {
		return last.result, nil
	}
	_, span := otel.Tracer("github.com/cairn-platform/cairn/controllers").Start(ctx, "translate.Translate")
	span.SetAttributes(attribute.String("cairn.gateway", gateway), attribute.Int("cairn.routes", len(in.Routes)))
	res := translate.Translate(in)
	span.End()
	if err := r.XDS.SetGateway(ctx, gateway, res); err != nil {
		return nil, fmt.Errorf("publishing gateway %s: %w", gateway, err)
	}
	r.mu.Lock()
	r.last[gateway] = translation{fingerprint: fp, result: res}
	r.mu.Unlock()
	return res, nil
}

// fingerprint identifies a translation input by the resource versions of its
// objects (which change with any edit) and the exclusions.
func fingerprint(in *translate.Input) string {
	h := sha256.New()
	add := func(kind string, objs []metav1.Object) {
		keys := make([]string, 0, len(objs))
		for _, o := range objs {
			keys = append(keys, o.GetNamespace()+"/"+o.GetName()+"@"+o.GetResourceVersion())
		}
		sort.Strings(keys)
		fmt.Fprintf(h, "%s:%s;", kind, strings.Join(keys, ","))
	}
	routes := make([]string, 0, len(in.Routes))
	for _, rt := range in.Routes {
		// Generation, not resourceVersion: status writes must not count.
		routes = append(routes, fmt.Sprintf("%s/%s@%d", rt.Namespace, rt.Name, rt.Generation))
	}
	sort.Strings(routes)
	fmt.Fprintf(h, "routes:%s;", strings.Join(routes, ","))
	add("services", metaObjects(in.Services))
	add("slices", metaObjects(in.EndpointSlices))
	add("functions", metaObjects(in.Functions))
	add("policies", metaObjects(in.AuthPolicies))
	add("configmaps", metaObjects(in.ConfigMaps))
	flavors := make([]string, 0, len(in.Excluded))
	for f, routes := range in.Excluded {
		var ks []string
		for k, gen := range routes {
			ks = append(ks, fmt.Sprintf("%s@%d", k, gen))
		}
		sort.Strings(ks)
		flavors = append(flavors, string(f)+"="+strings.Join(ks, ","))
	}
	sort.Strings(flavors)
	fmt.Fprintf(h, "excluded:%s", strings.Join(flavors, ";"))
	return hex.EncodeToString(h.Sum(nil))
}

func metaObjects[T any, PT interface {
	*T
	metav1.Object
}](items []T) []metav1.Object {
	out := make([]metav1.Object, len(items))
	for i := range items {
		out[i] = PT(&items[i])
	}
	return out
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
	// Comparing the status first spares building a merge patch for each of
	// a large gateway's unchanged Routes.
	if equality.Semantic.DeepEqual(base.Status, route.Status) {
		return nil
	}
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

// NewGatewayReconciler returns a reconciler ready for NotifyXDSChange. elected
// is closed when this replica becomes the leader.
func NewGatewayReconciler(c client.Client, recorder events.EventRecorder, xds *xdsserver.Server, opts translate.Options, elected <-chan struct{}) *GatewayReconciler {
	return &GatewayReconciler{
		Client: c, Recorder: recorder, XDS: xds, Options: opts, Elected: elected,
		changes: make(chan event.GenericEvent, 1024),
		last:    map[string]translation{},
	}
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
		// Status writes (ours) bump resourceVersion, not generation.
		Watches(&gatewayv1alpha1.Route{}, routeGatewayHandler{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
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

// StatusRefresher requeues every gateway when this replica becomes the
// leader: statuses written by the previous leader may be stale, and the
// non-leader reconciles skipped writing them.
func (r *GatewayReconciler) StatusRefresher() manager.Runnable {
	return manager.RunnableFunc(func(ctx context.Context) error {
		var routes gatewayv1alpha1.RouteList
		if err := r.List(ctx, &routes); err != nil {
			return fmt.Errorf("listing Routes after election: %w", err)
		}
		for _, req := range gatewayRequests(routes.Items, func(gatewayv1alpha1.Route) bool { return true }) {
			r.NotifyXDSChange(req.Name)
		}
		return nil
	})
}
