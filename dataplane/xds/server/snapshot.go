package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/cairn-platform/cairn/dataplane/xds/translate"
)

var marshal = proto.MarshalOptions{Deterministic: true}

// newSnapshot packs resources into a snapshot whose version per type is a
// hash of that type's content: pushing an unchanged table sends nothing.
func newSnapshot(r translate.Resources) (*cachev3.Snapshot, error) {
	snap := &cachev3.Snapshot{}
	sets := []struct {
		typ   types.ResponseType
		items []types.Resource
	}{
		{types.Listener, asResources(r.Listeners)},
		{types.Route, asResources(r.RouteConfigs)},
		{types.Cluster, asResources(r.Clusters)},
		{types.Endpoint, asResources(r.Endpoints)},
	}
	for _, s := range sets {
		v, err := contentVersion(s.items)
		if err != nil {
			return nil, err
		}
		snap.Resources[s.typ] = cachev3.NewResources(v, s.items)
	}
	// Per-resource versions for delta xDS.
	if err := snap.ConstructVersionMap(); err != nil {
		return nil, fmt.Errorf("building delta version map: %w", err)
	}
	return snap, nil
}

func asResources[M types.Resource](ms []M) []types.Resource {
	out := make([]types.Resource, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

func contentVersion(items []types.Resource) (string, error) {
	h := sha256.New()
	for _, it := range items {
		b, err := marshal.Marshal(it)
		if err != nil {
			return "", fmt.Errorf("marshaling %s: %w", cachev3.GetResourceName(it), err)
		}
		// Length-prefix so concatenations cannot collide.
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:12]), nil
}

// closure keeps what a gRPC client that subscribed to listeners needs and
// nothing else: grpc-go asks by name and gets no answer over ADS when the
// snapshot holds more resources of a type than it asked for.
func closure(r translate.Resources, listeners map[string]bool) translate.Resources {
	var out translate.Resources
	routeNames := map[string]bool{}
	for _, l := range r.Listeners {
		if !listeners[l.Name] {
			continue
		}
		out.Listeners = append(out.Listeners, l)
		if n := rdsName(l); n != "" {
			routeNames[n] = true
		}
	}
	clusterNames := map[string]bool{}
	for _, rc := range r.RouteConfigs {
		if !routeNames[rc.Name] {
			continue
		}
		out.RouteConfigs = append(out.RouteConfigs, rc)
		for _, vh := range rc.VirtualHosts {
			for _, rt := range vh.Routes {
				for _, c := range routeClusters(rt) {
					clusterNames[c] = true
				}
			}
		}
	}
	edsNames := map[string]bool{}
	for _, c := range r.Clusters {
		if clusterNames[c.Name] {
			out.Clusters = append(out.Clusters, c)
			if c.GetType() == clusterv3.Cluster_EDS {
				edsNames[c.Name] = true
			}
		}
	}
	for _, e := range r.Endpoints {
		if edsNames[e.ClusterName] {
			out.Endpoints = append(out.Endpoints, e)
		}
	}
	return out
}

func rdsName(l *listenerv3.Listener) string {
	var hcm hcmv3.HttpConnectionManager
	if l.ApiListener != nil && l.ApiListener.ApiListener.UnmarshalTo(&hcm) == nil {
		return hcm.GetRds().GetRouteConfigName()
	}
	return ""
}

func routeClusters(r *routev3.Route) []string {
	a := r.GetRoute()
	if c := a.GetCluster(); c != "" {
		return []string{c}
	}
	var names []string
	for _, w := range a.GetWeightedClusters().GetClusters() {
		names = append(names, w.Name)
	}
	return names
}

// includedRoutes lists the Routes whose entries are in the route tables,
// and which Routes send to each cluster. Entry names are
// "<namespace>/<route>/<rule>/<match>".
func includedRoutes(r translate.Resources) (map[k8stypes.NamespacedName]bool, map[string][]k8stypes.NamespacedName) {
	routes := map[k8stypes.NamespacedName]bool{}
	byCluster := map[string][]k8stypes.NamespacedName{}
	for _, rc := range r.RouteConfigs {
		for _, vh := range rc.VirtualHosts {
			for _, rt := range vh.Routes {
				k, ok := routeKey(rt.Name)
				if !ok {
					continue
				}
				routes[k] = true
				for _, c := range routeClusters(rt) {
					byCluster[c] = append(byCluster[c], k)
				}
			}
		}
	}
	return routes, byCluster
}

func routeKey(entryName string) (k8stypes.NamespacedName, bool) {
	parts := strings.Split(entryName, "/")
	if len(parts) != 4 {
		return k8stypes.NamespacedName{}, false
	}
	return k8stypes.NamespacedName{Namespace: parts[0], Name: parts[1]}, true
}
