package translate

import (
	"errors"
	"fmt"
	"sort"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
)

// Translate compiles a gateway's Routes. Routes of other gateways in the
// input are ignored. It never fails as a whole: problems are reported per
// Route in Result.Routes.
func Translate(in *Input) *Result {
	idx := newIndex(in)
	res := &Result{Routes: map[types.NamespacedName]RouteResult{}}
	opts := in.Options
	if opts.ListenerPort == 0 {
		opts.ListenerPort = defaultListenerPort
	}

	routes := make([]*gatewayv1alpha1.Route, 0, len(in.Routes))
	for i := range in.Routes {
		if in.Routes[i].Spec.GatewayRef.Name == in.Gateway {
			routes = append(routes, &in.Routes[i])
		}
	}
	// Oldest first: on identical matches the older route keeps the traffic.
	sort.Slice(routes, func(i, j int) bool {
		a, b := routes[i], routes[j]
		return olderThan(a.CreationTimestamp.Time, key(a.Namespace, a.Name).String(), b.CreationTimestamp.Time, key(b.Namespace, b.Name).String())
	})

	var frags []*fragment
	claimed := map[string]string{} // hostname|canonical match → route that has it
	validated := map[string]bool{} // shared clusters and endpoints already checked
	for _, rt := range routes {
		k := key(rt.Namespace, rt.Name)
		f, err := translateRoute(rt, idx, opts)
		if err == nil {
			err = validateFragment(f, validated)
		}
		if err == nil {
			err = claimMatches(f, claimed)
		}
		r := RouteResult{Generation: rt.Generation, Err: err}
		if err != nil {
			r.Reason = ReasonOf(err)
		}
		res.Routes[k] = r
		if err == nil {
			frags = append(frags, f)
		}
	}

	for _, flavor := range []Flavor{FlavorEnvoy, FlavorGRPC} {
		var included []*fragment
		for _, f := range frags {
			if gen, ok := in.Excluded[flavor][f.key]; ok && gen == f.generation {
				r := res.Routes[f.key]
				r.Excluded = append(r.Excluded, flavor)
				res.Routes[f.key] = r
				continue
			}
			included = append(included, f)
		}
		var err error
		if flavor == FlavorEnvoy {
			res.Envoy, err = assembleEnvoy(in.Gateway, included, opts)
		} else {
			res.GRPC, err = assembleGRPC(in.Gateway, included)
		}
		if err != nil {
			// Fragments are validated one by one, so this is a bug in the
			// translator, not in the input: keep serving no new config.
			panic(fmt.Sprintf("translate: assembling %s resources for gateway %s: %v", flavor, in.Gateway, err))
		}
	}
	return res
}

// claimMatches registers f's matches per hostname; a match identical to one
// of an older route (or an earlier rule of the same route) rejects f whole:
// a half-served route would be worse than a clearly refused one.
func claimMatches(f *fragment, claimed map[string]string) error {
	hosts := f.hostnames
	if len(hosts) == 0 {
		hosts = []string{"*"}
	}
	mine := map[string]string{}
	var errs []error
	for _, e := range f.entries {
		for _, h := range hosts {
			k := h + "|" + e.canonical
			if owner, ok := claimed[k]; ok {
				errs = append(errs, problemf(ReasonConflicted, "%s: identical match for host %q is already served by Route %s, which is older", e.where, h, owner))
			} else if prev, ok := mine[k]; ok {
				errs = append(errs, problemf(ReasonConflicted, "%s: identical to %s, so it could never match", e.where, prev))
			}
			mine[k] = e.where
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for k := range mine {
		claimed[k] = f.key.String()
	}
	return nil
}

func assembleEnvoy(gateway string, frags []*fragment, opts Options) (Resources, error) {
	var r Resources
	clusters, endpoints := mergeClusters(frags)
	needed := map[string]bool{}
	jwt := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{}, RequirementMap: map[string]*jwtv3.JwtRequirement{}}
	for _, f := range frags {
		for name := range f.filters {
			needed[name] = true
		}
		if f.auth != nil && f.auth.jwtRequirement != nil {
			for name, p := range f.auth.jwtProviders {
				jwt.Providers[name] = p
			}
			jwt.RequirementMap[f.auth.policy] = f.auth.jwtRequirement
		}
	}
	if opts.Tracing != nil {
		c, cla := staticCluster(TracingCluster, opts.Tracing.Collector, true)
		clusters[c.Name] = c
		if cla != nil {
			endpoints[cla.ClusterName] = cla
		}
	}
	filters, err := listenerFilters(needed, jwt)
	if err != nil {
		return r, err
	}
	l, err := envoyListener(gateway, opts.ListenerPort, filters, opts.Tracing)
	if err != nil {
		return r, err
	}
	r.Listeners = []*listenerv3.Listener{l}
	r.RouteConfigs = []*routev3.RouteConfiguration{routeConfig(EnvoyRouteConfigName(gateway), virtualHosts(frags, func(e *entry) *routev3.Route { return e.envoy }))}
	r.Clusters, r.Endpoints = sortedClusters(clusters, endpoints)
	return r, nil
}

// assembleGRPC builds one API listener and route table per hostname, and one
// named after the gateway for clients that dial the gateway itself.
func assembleGRPC(gateway string, frags []*fragment) (Resources, error) {
	var r Resources
	clusters, endpoints := mergeClusters(frags)
	vhosts := virtualHosts(frags, func(e *entry) *routev3.Route { return e.grpc })
	for _, vh := range vhosts {
		name := vh.Domains[0]
		if name == "*" {
			name = gateway
		}
		l, err := grpcListener(gateway, name)
		if err != nil {
			return r, err
		}
		r.Listeners = append(r.Listeners, l)
		r.RouteConfigs = append(r.RouteConfigs, routeConfig(GRPCRouteConfigName(gateway, name), []*routev3.VirtualHost{vh}))
	}
	sort.Slice(r.Listeners, func(i, j int) bool { return r.Listeners[i].Name < r.Listeners[j].Name })
	sort.Slice(r.RouteConfigs, func(i, j int) bool { return r.RouteConfigs[i].Name < r.RouteConfigs[j].Name })
	r.Clusters, r.Endpoints = sortedClusters(clusters, endpoints)
	return r, nil
}

func mergeClusters(frags []*fragment) (map[string]*clusterv3.Cluster, map[string]*endpointv3.ClusterLoadAssignment) {
	clusters := map[string]*clusterv3.Cluster{}
	endpoints := map[string]*endpointv3.ClusterLoadAssignment{}
	for _, f := range frags {
		for n, c := range f.clusters {
			clusters[n] = c
		}
		for n, e := range f.endpoints {
			endpoints[n] = e
		}
	}
	return clusters, endpoints
}

func sortedClusters(cs map[string]*clusterv3.Cluster, es map[string]*endpointv3.ClusterLoadAssignment) ([]*clusterv3.Cluster, []*endpointv3.ClusterLoadAssignment) {
	var clusters []*clusterv3.Cluster
	var endpoints []*endpointv3.ClusterLoadAssignment
	for _, c := range cs {
		clusters = append(clusters, c)
	}
	for _, e := range es {
		endpoints = append(endpoints, e)
	}
	sort.Slice(clusters, func(i, j int) bool { return clusters[i].Name < clusters[j].Name })
	sort.Slice(endpoints, func(i, j int) bool { return endpoints[i].ClusterName < endpoints[j].ClusterName })
	return clusters, endpoints
}

// olderThan orders objects by creation time, then by name.
func olderThan(at time.Time, aName string, bt time.Time, bName string) bool {
	if !at.Equal(bt) {
		return at.Before(bt)
	}
	return aName < bName
}
