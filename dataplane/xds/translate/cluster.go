package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	discoveryv1 "k8s.io/api/discovery/v1"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
)

// Names of the clusters Cairn itself provides.
const (
	FunctionHostCluster = "cairn/funchost"
	AuthzCluster        = "cairn/authz"
	TracingCluster      = "cairn/otel-collector"
)

const connectTimeout = 5 * time.Second

// adsSource tells the client to fetch a resource over the same ADS stream.
func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// trafficPolicy is the part of a rule that lives on the cluster. Rules that
// send to the same Service port with different policies get distinct
// clusters, named with a hash of the policy.
type trafficPolicy struct {
	CircuitBreaker   *gatewayv1alpha1.CircuitBreaker   `json:"cb,omitempty"`
	OutlierDetection *gatewayv1alpha1.OutlierDetection `json:"od,omitempty"`
}

func (p trafficPolicy) suffix() string {
	if p.CircuitBreaker == nil && p.OutlierDetection == nil {
		return ""
	}
	data, _ := json.Marshal(p) // plain structs: cannot fail
	sum := sha256.Sum256(data)
	return "~" + hex.EncodeToString(sum[:4])
}

// serviceCluster builds the EDS cluster and its endpoints for a Service port.
func serviceCluster(name string, policy trafficPolicy, endpoints *endpointv3.ClusterLoadAssignment) (*clusterv3.Cluster, *endpointv3.ClusterLoadAssignment, error) {
	c := &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(connectTimeout),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	}
	if cb := policy.CircuitBreaker; cb != nil {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority:           corev3.RoutingPriority_DEFAULT,
			MaxConnections:     u32(cb.MaxConnections),
			MaxPendingRequests: u32(cb.MaxPendingRequests),
			MaxRequests:        u32(cb.MaxRequests),
			MaxRetries:         u32(cb.MaxRetries),
		}}}
	}
	if od := policy.OutlierDetection; od != nil {
		interval, err := parseDuration(od.Interval)
		if err != nil {
			return nil, nil, fmt.Errorf("outlierDetection.interval: %w", err)
		}
		ejection, err := parseDuration(od.BaseEjectionTime)
		if err != nil {
			return nil, nil, fmt.Errorf("outlierDetection.baseEjectionTime: %w", err)
		}
		c.OutlierDetection = &clusterv3.OutlierDetection{
			Consecutive_5Xx:    wrapperspb.UInt32(uint32(od.Consecutive5xx)),
			Interval:           durationpb.New(interval),
			BaseEjectionTime:   durationpb.New(ejection),
			MaxEjectionPercent: wrapperspb.UInt32(uint32(od.MaxEjectionPercent)),
		}
	}
	endpoints.ClusterName = name
	return c, endpoints, nil
}

// serviceEndpoints lists the ready endpoints of one Service port from its
// EndpointSlices, grouped by zone into localities, sorted so output is
// deterministic. Every locality has an ID and a weight proportional to its
// endpoints: grpc-go rejects anonymous localities and ignores weightless ones.
func serviceEndpoints(slices []*discoveryv1.EndpointSlice, portName string) *endpointv3.ClusterLoadAssignment {
	type addr struct {
		zone, ip string
		port     uint32
	}
	seen := map[addr]bool{}
	var addrs []addr
	for _, s := range slices {
		var port *int32
		for _, p := range s.Ports {
			if (p.Name == nil && portName == "") || (p.Name != nil && *p.Name == portName) {
				port = p.Port
			}
		}
		if port == nil {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			zone := "default"
			if ep.Zone != nil && *ep.Zone != "" {
				zone = *ep.Zone
			}
			for _, ip := range ep.Addresses {
				a := addr{zone, ip, uint32(*port)}
				if !seen[a] {
					seen[a] = true
					addrs = append(addrs, a)
				}
			}
		}
	}
	sort.Slice(addrs, func(i, j int) bool {
		a, b := addrs[i], addrs[j]
		if a.zone != b.zone {
			return a.zone < b.zone
		}
		if a.ip != b.ip {
			return a.ip < b.ip
		}
		return a.port < b.port
	})
	cla := &endpointv3.ClusterLoadAssignment{}
	var locality *endpointv3.LocalityLbEndpoints
	for _, a := range addrs {
		if locality == nil || locality.Locality.Zone != a.zone {
			locality = &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{Region: "cairn", Zone: a.zone}}
			cla.Endpoints = append(cla.Endpoints, locality)
		}
		locality.LbEndpoints = append(locality.LbEndpoints, lbEndpoint(a.ip, a.port))
	}
	for _, l := range cla.Endpoints {
		l.LoadBalancingWeight = wrapperspb.UInt32(uint32(len(l.LbEndpoints)))
	}
	return cla
}

func lbEndpoint(host string, port uint32) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, port)}},
		HealthStatus:   corev3.HealthStatus_HEALTHY,
	}
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// staticCluster reaches one address: EDS with a fixed assignment for an IP
// (what grpc-go handles best), LOGICAL_DNS for a host name.
func staticCluster(name string, a Address, http2 bool) (*clusterv3.Cluster, *endpointv3.ClusterLoadAssignment) {
	cla := &endpointv3.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			Locality:            &corev3.Locality{Region: "cairn", Zone: "default"},
			LoadBalancingWeight: wrapperspb.UInt32(1),
			LbEndpoints:         []*endpointv3.LbEndpoint{lbEndpoint(a.Host, a.Port)},
		}},
	}
	c := &clusterv3.Cluster{
		Name:           name,
		ConnectTimeout: durationpb.New(connectTimeout),
		LbPolicy:       clusterv3.Cluster_ROUND_ROBIN,
	}
	if http2 {
		opts, _ := anypb.New(&httpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			}},
		})
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts}
	}
	if net.ParseIP(a.Host) != nil {
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()}
		return c, cla
	}
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
	c.LoadAssignment = cla
	return c, nil
}

func u32(v *int32) *wrapperspb.UInt32Value {
	if v == nil {
		return nil
	}
	return wrapperspb.UInt32(uint32(*v))
}

func parseDuration(d common.Duration) (time.Duration, error) {
	v, err := time.ParseDuration(string(d))
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: %w", d, err)
	}
	return v, nil
}
