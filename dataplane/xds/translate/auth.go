package translate

import (
	"fmt"
	"net"
	"net/url"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
)

// PolicyContextKey is the ext_authz context extension that tells Cairn's
// authorization service which AuthPolicy ("namespace/name") applies.
const PolicyContextKey = "cairn.policy"

// authConfig is what one AuthPolicy contributes to a route and listener.
type authConfig struct {
	policy string // namespace/name
	// jwtProviders are named "<namespace>/<policy>/<provider>".
	jwtProviders   map[string]*jwtv3.JwtProvider
	jwtRequirement *jwtv3.JwtRequirement
	introspection  bool
	clusters       []*clusterv3.Cluster
	endpoints      []*endpointv3.ClusterLoadAssignment
}

func translateAuthPolicy(p *gatewayv1alpha1.AuthPolicy, opts Options) (*authConfig, error) {
	cfg := &authConfig{policy: p.Namespace + "/" + p.Name, jwtProviders: map[string]*jwtv3.JwtProvider{}}
	if jwt := p.Spec.JWT; jwt != nil {
		var names []string
		for _, prov := range jwt.Providers {
			name := cfg.policy + "/" + prov.Name
			jp, cluster, err := jwtProvider(prov)
			if err != nil {
				return nil, fmt.Errorf("AuthPolicy %s: jwt provider %q: %w", cfg.policy, prov.Name, err)
			}
			cfg.jwtProviders[name] = jp
			if cluster != nil {
				cfg.clusters = append(cfg.clusters, cluster)
			}
			names = append(names, name)
		}
		cfg.jwtRequirement = requireAny(names, jwt.Optional)
	}
	if p.Spec.OAuth2Introspection != nil {
		if opts.Authz == nil {
			return nil, problemf(ReasonUnsupported, "AuthPolicy %s uses oauth2Introspection but the gateway has no authorization service configured", cfg.policy)
		}
		cfg.introspection = true
		c, cla := staticCluster(AuthzCluster, *opts.Authz, true)
		cfg.clusters = append(cfg.clusters, c)
		if cla != nil {
			cfg.endpoints = append(cfg.endpoints, cla)
		}
	}
	return cfg, nil
}

func requireAny(names []string, optional bool) *jwtv3.JwtRequirement {
	var reqs []*jwtv3.JwtRequirement
	for _, n := range names {
		reqs = append(reqs, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: n}})
	}
	if optional {
		// A missing token passes; an invalid one is still rejected.
		reqs = append(reqs, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}})
	}
	if len(reqs) == 1 {
		return reqs[0]
	}
	return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: reqs}}}
}

func jwtProvider(p gatewayv1alpha1.JWTProvider) (*jwtv3.JwtProvider, *clusterv3.Cluster, error) {
	jp := &jwtv3.JwtProvider{
		Issuer:    p.Issuer,
		Audiences: p.Audiences,
		Forward:   p.ForwardToken,
	}
	for _, c := range p.ClaimToHeaders {
		jp.ClaimToHeaders = append(jp.ClaimToHeaders, &jwtv3.JwtClaimToHeader{ClaimName: c.Claim, HeaderName: c.Header})
	}
	if p.JWKS.Inline != nil {
		jp.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: *p.JWKS.Inline}}}
		return jp, nil, nil
	}
	remote := p.JWKS.Remote
	u, err := url.Parse(remote.URI)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return nil, nil, fmt.Errorf("jwks uri %q is not an absolute https URL", remote.URI)
	}
	port := uint32(443)
	if ps := u.Port(); ps != "" {
		n, err := strconv.ParseUint(ps, 10, 16)
		if err != nil {
			return nil, nil, fmt.Errorf("jwks uri %q has an invalid port", remote.URI)
		}
		port = uint32(n)
	}
	cacheFor, err := parseDuration(remote.CacheDuration)
	if err != nil {
		return nil, nil, fmt.Errorf("jwks cacheDuration: %w", err)
	}
	timeout, err := parseDuration(remote.Timeout)
	if err != nil {
		return nil, nil, fmt.Errorf("jwks timeout: %w", err)
	}
	clusterName := "cairn/jwks/" + net.JoinHostPort(u.Hostname(), strconv.Itoa(int(port)))
	jp.JwksSourceSpecifier = &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
		HttpUri: &corev3.HttpUri{
			Uri:              remote.URI,
			HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: clusterName},
			Timeout:          durationpb.New(timeout),
		},
		CacheDuration: durationpb.New(cacheFor),
		// Fetch at start-up and retry, so the first request does not wait on
		// (or fail because of) an unreachable JWKS endpoint.
		AsyncFetch:  &jwtv3.JwksAsyncFetch{},
		RetryPolicy: &corev3.RetryPolicy{NumRetries: wrapperspb.UInt32(3)},
	}}
	return jp, jwksCluster(clusterName, u.Hostname(), port), nil
}

// jwksCluster reaches an issuer over TLS: the certificate must chain to the
// system roots and name the host, or keys could be served by anyone.
func jwksCluster(name, host string, port uint32) *clusterv3.Cluster {
	tls, _ := anypb.New(&tlsv3.UpstreamTlsContext{
		Sni: host,
		CommonTlsContext: &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
			ValidationContext: &tlsv3.CertificateValidationContext{
				SystemRootCerts: &tlsv3.CertificateValidationContext_SystemRootCerts{},
				MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
					SanType: tlsv3.SubjectAltNameMatcher_DNS,
					Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: host}},
				}},
			},
		}},
	})
	return &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(connectTimeout),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS},
		DnsLookupFamily:      clusterv3.Cluster_V4_PREFERRED,
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint(host, port)}}},
		},
		TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: tls}},
	}
}

// extAuthzPerRoute turns the (by default disabled) ext_authz filter on for a
// route and tells the service which policy to apply.
func extAuthzPerRoute(policy string) proto.Message {
	return &extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_CheckSettings{CheckSettings: &extauthzv3.CheckSettings{
		ContextExtensions: map[string]string{PolicyContextKey: policy},
	}}}
}

func jwtPerRoute(policy string) proto.Message {
	return &jwtv3.PerRouteConfig{RequirementSpecifier: &jwtv3.PerRouteConfig_RequirementName{RequirementName: policy}}
}
