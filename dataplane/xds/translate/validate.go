package translate

import (
	"errors"
	"fmt"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// validateFragment checks a Route's resources before they can join the
// gateway: Envoy's proto constraints, including inside packed configs.
// Clusters and endpoints shared by many routes are checked once per
// translation (seen).
func validateFragment(f *fragment, seen map[string]bool) error {
	var errs []error
	for _, e := range f.entries {
		for _, r := range []*routev3.Route{e.envoy, e.grpc} {
			if err := validateRoute(r); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", e.where, err))
			}
		}
	}
	for name, c := range f.clusters {
		if seen["c:"+name] {
			continue
		}
		if err := ValidateDeep(c); err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", name, err))
		}
	}
	for name, e := range f.endpoints {
		if seen["e:"+name] {
			continue
		}
		if err := ValidateDeep(e); err != nil {
			errs = append(errs, fmt.Errorf("endpoints %s: %w", name, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for name := range f.clusters {
		seen["c:"+name] = true
	}
	for name := range f.endpoints {
		seen["e:"+name] = true
	}
	return nil
}

// validateRoute is ValidateDeep specialised for route entries, the bulk of a
// large gateway: the translator packs configs only in typed_per_filter_config.
func validateRoute(r *routev3.Route) error {
	var errs []error
	if err := r.ValidateAll(); err != nil {
		errs = append(errs, err)
	}
	for name, a := range r.TypedPerFilterConfig {
		if err := validateAny(a); err != nil {
			errs = append(errs, fmt.Errorf("typed_per_filter_config[%s]: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func validateAny(a *anypb.Any) error {
	inner, err := a.UnmarshalNew()
	if err != nil {
		return fmt.Errorf("unpacking %s: %w", a.GetTypeUrl(), err)
	}
	if err := ValidateDeep(inner); err != nil {
		return fmt.Errorf("%s: %w", a.GetTypeUrl(), err)
	}
	return nil
}

type validator interface{ ValidateAll() error }

// ValidateDeep runs the generated ValidateAll of m and of every message
// packed in a google.protobuf.Any inside it, which ValidateAll alone skips
// (an HTTP connection manager inside a listener, per-filter route configs).
func ValidateDeep(m proto.Message) error {
	var errs []error
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, err)
		}
	}
	walkAnys(m.ProtoReflect(), func(a *anypb.Any) {
		if err := validateAny(a); err != nil {
			errs = append(errs, err)
		}
	})
	return errors.Join(errs...)
}

func walkAnys(m protoreflect.Message, visit func(*anypb.Any)) {
	if !mayContainAny(m.Descriptor()) {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					visitMessage(mv.Message(), visit)
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				l := v.List()
				for i := 0; i < l.Len(); i++ {
					visitMessage(l.Get(i).Message(), visit)
				}
			}
		case fd.Message() != nil:
			visitMessage(v.Message(), visit)
		}
		return true
	})
}

func visitMessage(m protoreflect.Message, visit func(*anypb.Any)) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		visit(a)
		return
	}
	walkAnys(m, visit)
}

// CheckReferences verifies that every name a resource points at exists:
// listener → route table, route → cluster, EDS cluster → endpoints.
// (go-control-plane's Snapshot.Consistent misses route → cluster references
// and misreads API listeners.)
func CheckReferences(r Resources) error {
	routes := map[string]bool{}
	for _, rc := range r.RouteConfigs {
		routes[rc.Name] = true
	}
	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range r.Clusters {
		clusters[c.Name] = c
	}
	endpoints := map[string]bool{}
	for _, e := range r.Endpoints {
		endpoints[e.ClusterName] = true
	}
	var errs []error
	for _, l := range r.Listeners {
		for _, name := range rdsNames(l) {
			if !routes[name] {
				errs = append(errs, fmt.Errorf("listener %s uses missing route table %s", l.Name, name))
			}
		}
	}
	for _, rc := range r.RouteConfigs {
		for _, vh := range rc.VirtualHosts {
			for _, rt := range vh.Routes {
				for _, c := range routeClusters(rt) {
					if clusters[c] == nil {
						errs = append(errs, fmt.Errorf("route %s in %s sends to missing cluster %s", rt.Name, rc.Name, c))
					}
				}
			}
		}
	}
	for name, c := range clusters {
		if c.GetType() == clusterv3.Cluster_EDS && !endpoints[name] {
			errs = append(errs, fmt.Errorf("EDS cluster %s has no endpoints resource", name))
		}
	}
	return errors.Join(errs...)
}

func rdsNames(l *listenerv3.Listener) []string {
	var hcms []*anypb.Any
	if l.ApiListener != nil {
		hcms = append(hcms, l.ApiListener.ApiListener)
	}
	for _, fc := range l.FilterChains {
		for _, f := range fc.Filters {
			hcms = append(hcms, f.GetTypedConfig())
		}
	}
	var names []string
	for _, a := range hcms {
		var hcm hcmv3.HttpConnectionManager
		if a.MessageIs(&hcm) && a.UnmarshalTo(&hcm) == nil && hcm.GetRds() != nil {
			names = append(names, hcm.GetRds().GetRouteConfigName())
		}
	}
	return names
}

func routeClusters(r *routev3.Route) []string {
	a := r.GetRoute()
	if a == nil {
		return nil
	}
	if c := a.GetCluster(); c != "" {
		return []string{c}
	}
	var names []string
	for _, w := range a.GetWeightedClusters().GetClusters() {
		names = append(names, w.Name)
	}
	return names
}

var anyName = (&anypb.Any{}).ProtoReflect().Descriptor().FullName()

// anyReach memoizes, per message type, whether an Any can occur anywhere
// inside it, so validation skips the (many) subtrees that cannot hold one.
var anyReach sync.Map // protoreflect.FullName → bool

func mayContainAny(md protoreflect.MessageDescriptor) bool {
	found, _ := reachesAny(md, map[protoreflect.FullName]bool{})
	return found
}

// reachesAny walks the type graph depth first. A type on the current path
// counts as "no" (its own walk decides), so a result that relied on such a
// back edge is only cached when it is "yes".
func reachesAny(md protoreflect.MessageDescriptor, onPath map[protoreflect.FullName]bool) (found, partial bool) {
	name := md.FullName()
	if v, ok := anyReach.Load(name); ok {
		return v.(bool), false
	}
	if name == anyName {
		return true, false
	}
	if onPath[name] {
		return false, true
	}
	onPath[name] = true
	defer delete(onPath, name)
	fields := md.Fields()
	for i := 0; i < fields.Len() && !found; i++ {
		fd := fields.Get(i)
		if fd.IsMap() {
			fd = fd.MapValue()
		}
		if sub := fd.Message(); sub != nil {
			f, p := reachesAny(sub, onPath)
			found, partial = f, partial || p
		}
	}
	if found || !partial {
		anyReach.Store(name, found)
	}
	return found, partial
}
