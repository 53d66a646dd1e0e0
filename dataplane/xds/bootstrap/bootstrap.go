// Package bootstrap renders the Envoy v3 bootstrap that connects a proxy to
// Cairn's xDS server. It is pure: the same options always yield the same
// configuration, which is validated (deeply, packed configs included) before
// it is returned.
//
// The bootstrap defines only what Envoy needs before it reaches the control
// plane:
//
//   - node: id (unique per proxy) and cluster (the gateway name: Routes whose
//     spec.gatewayRef.name equals it are sent to this proxy);
//   - dynamic_resources: listeners and clusters over one ADS stream (gRPC,
//     state of the world, transport and resource API v3);
//   - static cluster "cairn-xds": the xDS server, HTTP/2, resolved by DNS;
//   - admin on 127.0.0.1 only, and a health listener on all interfaces that
//     exposes just the admin's /ready and /stats/prometheus for probes and
//     scraping;
//   - an overload manager cap on downstream connections, and a runtime with a
//     static and an admin layer.
//
// Everything else — the gateway's listener, route tables, clusters of
// Services, Cairn's authz, function host and tracing clusters — arrives over
// ADS and must not be defined here.
package bootstrap

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	overloadv3 "github.com/envoyproxy/go-control-plane/envoy/config/overload/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	connectionsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	yamlv3 "go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"

	"github.com/cairn-platform/cairn/dataplane/xds/translate"
)

// Defaults of Options.
const (
	// DefaultXDSAddress is the manager's xDS Service inside the cluster.
	DefaultXDSAddress = "cairn-xds.cairn-system.svc:18000"
	// DefaultAdminPort is Envoy's admin port, bound to 127.0.0.1.
	DefaultAdminPort = 9901
	// DefaultHealthPort serves /ready and /stats/prometheus on all
	// interfaces, proxied to the admin.
	DefaultHealthPort = 19001
	// DefaultMaxConnections caps downstream connections across listeners.
	DefaultMaxConnections = 50000
)

// Names of the static resources the bootstrap defines. They differ from
// every name the translator sends, so nothing sent over xDS replaces them.
const (
	XDSCluster     = "cairn-xds"
	AdminCluster   = "cairn-admin"
	HealthListener = "cairn-health"
)

// Keepalives towards the xDS server. The server accepts pings every 10 s
// at most; faster pings would be answered with GOAWAY (too_many_pings).
const (
	xdsConnectTimeout     = 5 * time.Second
	http2KeepaliveEvery   = 30 * time.Second
	http2KeepaliveTimeout = 5 * time.Second
	tcpKeepaliveTime      = 30 // seconds idle before the first probe
	tcpKeepaliveInterval  = 5  // seconds between probes
	tcpKeepaliveProbes    = 3
	healthConnectionLimit = 100
)

// gatewayName is the pattern of Route spec.gatewayRef.name (a DNS label).
var gatewayName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Options select the proxy's identity and where the control plane is.
type Options struct {
	// Gateway is the xDS node cluster: the proxy serves the Routes whose
	// spec.gatewayRef.name equals it. Required.
	Gateway string
	// NodeID identifies the proxy to the control plane and must be unique
	// per proxy (Envoy's --service-node overrides it, e.g. with the pod
	// name). Default: "<gateway>-envoy".
	NodeID string
	// XDSAddress is the xDS server's host:port. Default: DefaultXDSAddress.
	XDSAddress string
	// AdminPort of the admin interface on 127.0.0.1. Default: 9901.
	AdminPort uint32
	// HealthPort serves the admin's /ready and /stats/prometheus on
	// 0.0.0.0. Default: 19001. It must differ from the gateway's listener
	// port (10080 unless the manager's --gateway-listener-port says
	// otherwise).
	HealthPort uint32
	// MaxConnections caps downstream connections across all listeners.
	// Default: 50000.
	MaxConnections int64
}

// withDefaults fills zero fields.
func (o Options) withDefaults() Options {
	if o.NodeID == "" {
		o.NodeID = o.Gateway + "-envoy"
	}
	if o.XDSAddress == "" {
		o.XDSAddress = DefaultXDSAddress
	}
	if o.AdminPort == 0 {
		o.AdminPort = DefaultAdminPort
	}
	if o.HealthPort == 0 {
		o.HealthPort = DefaultHealthPort
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	return o
}

// SplitAddress parses host:port; the port must be 1-65535.
func SplitAddress(addr string) (string, uint32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("invalid address %q: want host:port: %w", addr, err)
	}
	if host == "" {
		return "", 0, fmt.Errorf("invalid address %q: the host is empty", addr)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("invalid address %q: the port must be a number from 1 to 65535", addr)
	}
	return host, uint32(p), nil
}

func (o Options) validate() (string, uint32, error) {
	if o.Gateway == "" {
		return "", 0, fmt.Errorf("the gateway name is required")
	}
	if len(o.Gateway) > 63 || !gatewayName.MatchString(o.Gateway) {
		return "", 0, fmt.Errorf("invalid gateway name %q: it must be a DNS label (lowercase letters, digits and '-', at most 63), like Route spec.gatewayRef.name", o.Gateway)
	}
	host, port, err := SplitAddress(o.XDSAddress)
	if err != nil {
		return "", 0, fmt.Errorf("xDS address: %w", err)
	}
	for name, p := range map[string]uint32{"admin": o.AdminPort, "health": o.HealthPort} {
		if p > 65535 {
			return "", 0, fmt.Errorf("invalid %s port %d: must be from 1 to 65535", name, p)
		}
	}
	if o.AdminPort == o.HealthPort {
		return "", 0, fmt.Errorf("the admin and health ports must differ (both are %d)", o.AdminPort)
	}
	if o.MaxConnections < 0 {
		return "", 0, fmt.Errorf("invalid maximum number of connections %d: must be positive", o.MaxConnections)
	}
	return host, port, nil
}

// Build returns the bootstrap for o, validated deeply.
func Build(o Options) (*bootstrapv3.Bootstrap, error) {
	o = o.withDefaults()
	xdsHost, xdsPort, err := o.validate()
	if err != nil {
		return nil, err
	}
	xds, err := xdsCluster(xdsHost, xdsPort)
	if err != nil {
		return nil, err
	}
	health, err := healthListener(o.HealthPort)
	if err != nil {
		return nil, err
	}
	overload, err := overloadManager(o.MaxConnections)
	if err != nil {
		return nil, err
	}
	runtime, err := structpb.NewStruct(map[string]any{
		// The health listener faces the pod network: bound it.
		"envoy.resource_limits.listener." + HealthListener + ".connection_limit": healthConnectionLimit,
	})
	if err != nil {
		return nil, err
	}
	b := &bootstrapv3.Bootstrap{
		Node: &corev3.Node{
			Id:      o.NodeID,
			Cluster: o.Gateway,
			// The server also tells Envoy from grpc-go by user agent, which
			// Envoy sets itself; this states it explicitly.
			Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
				"cairn.flavor": structpb.NewStringValue(string(translate.FlavorEnvoy)),
			}},
		},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             corev3.ApiConfigSource_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices: []*corev3.GrpcService{{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: XDSCluster}},
				}},
				SetNodeOnFirstMessageOnly: true,
			},
			LdsConfig: adsSource(),
			CdsConfig: adsSource(),
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Listeners: []*listenerv3.Listener{health},
			Clusters:  []*clusterv3.Cluster{xds, adminCluster(o.AdminPort)},
		},
		Admin: &bootstrapv3.Admin{Address: socketAddress("127.0.0.1", o.AdminPort)},
		LayeredRuntime: &bootstrapv3.LayeredRuntime{Layers: []*bootstrapv3.RuntimeLayer{
			{Name: "static", LayerSpecifier: &bootstrapv3.RuntimeLayer_StaticLayer{StaticLayer: runtime}},
			{Name: "admin", LayerSpecifier: &bootstrapv3.RuntimeLayer_AdminLayer_{AdminLayer: &bootstrapv3.RuntimeLayer_AdminLayer{}}},
		}},
		OverloadManager: overload,
	}
	if err := translate.ValidateDeep(b); err != nil {
		return nil, fmt.Errorf("invalid bootstrap: %w", err)
	}
	return b, nil
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func loadAssignment(cluster, host string, port uint32) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: cluster,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, port)}},
		}}}},
	}
}

// xdsCluster reaches the xDS server over HTTP/2 (gRPC), re-resolving its
// name so a changed Service address is followed. HTTP/2 and TCP keepalives
// detect a dead server behind a silent network.
func xdsCluster(host string, port uint32) (*clusterv3.Cluster, error) {
	opts, err := anypb.New(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{
				ConnectionKeepalive: &corev3.KeepaliveSettings{
					Interval: durationpb.New(http2KeepaliveEvery),
					Timeout:  durationpb.New(http2KeepaliveTimeout),
				},
			}},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("packing HTTP protocol options: %w", err)
	}
	return &clusterv3.Cluster{
		Name:                 XDSCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
		ConnectTimeout:       durationpb.New(xdsConnectTimeout),
		DnsLookupFamily:      clusterv3.Cluster_V4_PREFERRED,
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment:       loadAssignment(XDSCluster, host, port),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts,
		},
		UpstreamConnectionOptions: &clusterv3.UpstreamConnectionOptions{TcpKeepalive: &corev3.TcpKeepalive{
			KeepaliveProbes:   wrapperspb.UInt32(tcpKeepaliveProbes),
			KeepaliveTime:     wrapperspb.UInt32(tcpKeepaliveTime),
			KeepaliveInterval: wrapperspb.UInt32(tcpKeepaliveInterval),
		}},
	}, nil
}

// adminCluster is Envoy's own admin interface, for the health listener.
func adminCluster(port uint32) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 AdminCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment:       loadAssignment(AdminCluster, "127.0.0.1", port),
	}
}

// healthListener exposes two read-only admin paths to the pod network —
// /ready (200 once Envoy is initialized and not draining) for Kubernetes
// probes and /stats/prometheus for scraping — and nothing else of the admin
// (which can change runtime values or stop Envoy).
func healthListener(port uint32) (*listenerv3.Listener, error) {
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	toAdmin := func(path string) *routev3.Route {
		return &routev3.Route{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: path}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: AdminCluster},
			}},
		}
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: "cairn_health",
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: HealthListener,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    HealthListener,
				Domains: []string{"*"},
				Routes:  []*routev3.Route{toAdmin("/ready"), toAdmin("/stats/prometheus")},
			}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
	})
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:    HealthListener,
		Address: socketAddress("0.0.0.0", port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
		}}}},
	}, nil
}

// overloadManager caps downstream connections with the resource monitor
// that replaced the deprecated overload.global_downstream_max_connections
// runtime key. Envoy refuses connections over the cap; without one it warns
// at start-up that connections are unbounded.
func overloadManager(max int64) (*overloadv3.OverloadManager, error) {
	cfg, err := anypb.New(&connectionsv3.DownstreamConnectionsConfig{MaxActiveDownstreamConnections: max})
	if err != nil {
		return nil, err
	}
	return &overloadv3.OverloadManager{
		RefreshInterval: durationpb.New(250 * time.Millisecond),
		ResourceMonitors: []*overloadv3.ResourceMonitor{{
			Name:       "envoy.resource_monitors.global_downstream_max_connections",
			ConfigType: &overloadv3.ResourceMonitor_TypedConfig{TypedConfig: cfg},
		}},
	}, nil
}

// Marshal renders b as "yaml" or "json", with the proto field names Envoy's
// documentation uses. The output is deterministic.
func Marshal(b *bootstrapv3.Bootstrap, format string) ([]byte, error) {
	// protojson randomizes whitespace on purpose; compacting and indenting
	// with encoding/json makes the output stable, in proto field order.
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encoding bootstrap: %w", err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, fmt.Errorf("encoding bootstrap: %w", err)
	}
	switch format {
	case "json":
		var out bytes.Buffer
		if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
			return nil, fmt.Errorf("encoding bootstrap: %w", err)
		}
		out.WriteByte('\n')
		return out.Bytes(), nil
	case "yaml", "":
		out, err := jsonToYAML(compact.Bytes())
		if err != nil {
			return nil, fmt.Errorf("encoding bootstrap: %w", err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("invalid output format %q: must be one of yaml, json", format)
	}
}

// jsonToYAML converts JSON to block-style YAML, keeping the key order (the
// proto field order: node first), which sigs.k8s.io/yaml would sort.
func jsonToYAML(js []byte) ([]byte, error) {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(js, &doc); err != nil {
		return nil, err
	}
	var plain func(*yamlv3.Node)
	plain = func(n *yamlv3.Node) {
		// JSON's quoted strings and {…}/[…] collections would otherwise be
		// kept; the encoder still quotes strings that need it ("50000").
		n.Style = 0
		for _, c := range n.Content {
			plain(c)
		}
	}
	plain(&doc)
	var out bytes.Buffer
	enc := yamlv3.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Parse reads a bootstrap rendered as YAML or JSON, rejecting unknown
// fields.
func Parse(data []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("parsing bootstrap: %w", err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		return nil, fmt.Errorf("parsing bootstrap: %w", err)
	}
	return b, nil
}
