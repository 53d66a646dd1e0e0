package translate

import (
	"fmt"
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	transcoderv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_json_transcoder/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

const defaultListenerPort = 10080

// EnvoyListenerName names a gateway's socket listener.
func EnvoyListenerName(gateway string) string { return "cairn/" + gateway + "/http" }

// EnvoyRouteConfigName names the route table of a gateway's socket listener.
func EnvoyRouteConfigName(gateway string) string { return "cairn/" + gateway + "/http" }

// GRPCRouteConfigName names the route table behind a gRPC API listener.
func GRPCRouteConfigName(gateway, listener string) string {
	return "cairn/" + gateway + "/grpc/" + listener
}

// listenerFilters is the Envoy filter chain, in order: CORS answers
// preflights before authentication; authentication runs before rate
// limiting so anonymous floods are cheap; transcoding and routing last.
func listenerFilters(needed map[string]bool, jwt *jwtv3.JwtAuthentication) ([]*hcmv3.HttpFilter, error) {
	var filters []*hcmv3.HttpFilter
	add := func(name string, cfg proto.Message, disabled bool) error {
		a, err := anypb.New(cfg)
		if err != nil {
			return fmt.Errorf("packing %s: %w", name, err)
		}
		filters = append(filters, &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: a}, Disabled: disabled})
		return nil
	}
	steps := []struct {
		name     string
		cfg      proto.Message
		disabled bool
	}{
		{filterCORS, &corsv3.Cors{}, false},
		{filterJWT, jwt, false},
		// Enabled per route, with the route's policy in its context.
		{filterExtAuthz, &extauthzv3.ExtAuthz{
			Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
				TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: AuthzCluster}},
			}},
			TransportApiVersion: corev3.ApiVersion_V3,
			// Cairn's authz service applies each policy's failure mode itself;
			// when the service is unreachable, fail closed.
			FailureModeAllow: false,
		}, true},
		// Without a token bucket the filter does nothing; routes bring theirs.
		{filterRateLimit, &ratelimitv3.LocalRateLimit{StatPrefix: "cairn_local_ratelimit"}, false},
		// Configured per route (descriptor and services).
		{filterTranscoder, &transcoderv3.GrpcJsonTranscoder{
			DescriptorSet: &transcoderv3.GrpcJsonTranscoder_ProtoDescriptorBin{ProtoDescriptorBin: emptyDescriptorSet},
			Services:      []string{},
		}, true},
	}
	for _, s := range steps {
		if !needed[s.name] {
			continue
		}
		if err := add(s.name, s.cfg, s.disabled); err != nil {
			return nil, err
		}
	}
	if err := add(filterRouter, &routerv3.Router{}, false); err != nil {
		return nil, err
	}
	return filters, nil
}

// emptyDescriptorSet is a serialized FileDescriptorSet with no files.
var emptyDescriptorSet = []byte{}

func envoyListener(gateway string, port uint32, filters []*hcmv3.HttpFilter, tracing *Tracing) (*listenerv3.Listener, error) {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "cairn_" + gateway,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: EnvoyRouteConfigName(gateway),
		}},
		HttpFilters: filters,
	}
	if tracing != nil {
		otel, err := anypb.New(&tracev3.OpenTelemetryConfig{
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: TracingCluster}}},
			ServiceName: tracing.ServiceName,
		})
		if err != nil {
			return nil, err
		}
		hcm.Tracing = &hcmv3.HttpConnectionManager_Tracing{
			RandomSampling: &typev3.Percent{Value: tracing.SamplePercent},
			Provider:       &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: otel}},
		}
	}
	a, err := anypb.New(hcm)
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:    EnvoyListenerName(gateway),
		Address: socketAddress("0.0.0.0", port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a},
		}}}},
	}, nil
}

// grpcListener is an API listener (no socket) for grpc-go clients that dial
// xds:///name; only the router filter, which grpc-go implements.
func grpcListener(gateway, name string) (*listenerv3.Listener, error) {
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: "cairn_grpc",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: GRPCRouteConfigName(gateway, name),
		}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: filterRouter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	})
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{Name: name, ApiListener: &listenerv3.ApiListener{ApiListener: hcm}}, nil
}

// virtualHosts groups entries by hostname. Entries of routes without
// hostnames serve every hostname, so they join every virtual host as well as
// the catch-all "*". Within a host the most specific match comes first.
func virtualHosts(frags []*fragment, pick func(*entry) *routev3.Route) []*routev3.VirtualHost {
	type ranked struct {
		e   *entry
		f   *fragment
		seq int
	}
	hosts := map[string][]ranked{"*": nil}
	var everywhere []ranked
	seq := 0
	for _, f := range frags {
		for _, e := range f.entries {
			r := ranked{e, f, seq}
			seq++
			if len(f.hostnames) == 0 {
				everywhere = append(everywhere, r)
				continue
			}
			for _, h := range f.hostnames {
				hosts[h] = append(hosts[h], r)
			}
		}
	}
	for h := range hosts {
		hosts[h] = append(hosts[h], everywhere...)
	}
	names := make([]string, 0, len(hosts))
	for h := range hosts {
		names = append(names, h)
	}
	sort.Strings(names)
	var out []*routev3.VirtualHost
	for _, h := range names {
		rs := hosts[h]
		if len(rs) == 0 {
			continue
		}
		sort.SliceStable(rs, func(i, j int) bool {
			a, b := rs[i], rs[j]
			if a.e.spec != b.e.spec {
				return a.e.spec.moreSpecificThan(b.e.spec)
			}
			// Equal specificity: the older route first, as Gateway API does.
			if a.f != b.f {
				return olderThan(a.f.created, a.f.key.String(), b.f.created, b.f.key.String())
			}
			return a.seq < b.seq
		})
		vh := &routev3.VirtualHost{Name: vhostName(h), Domains: []string{h}}
		for _, r := range rs {
			vh.Routes = append(vh.Routes, pick(r.e))
		}
		out = append(out, vh)
	}
	return out
}

func vhostName(host string) string {
	if host == "*" {
		return "all-hosts"
	}
	return host
}

// routeConfig wraps virtual hosts; ValidateClusters is off because clusters
// arrive over CDS after the route table.
func routeConfig(name string, vhosts []*routev3.VirtualHost) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: vhosts}
}
