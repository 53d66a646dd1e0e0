package translate

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	transcoderv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_json_transcoder/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
)

// Envoy HTTP filter names; per-route configs are keyed by them.
const (
	filterCORS       = "envoy.filters.http.cors"
	filterJWT        = "envoy.filters.http.jwt_authn"
	filterExtAuthz   = "envoy.filters.http.ext_authz"
	filterRateLimit  = "envoy.filters.http.local_ratelimit"
	filterTranscoder = "envoy.filters.http.grpc_json_transcoder"
	filterRouter     = "envoy.filters.http.router"
)

// FunctionHeader tells the function host which Function a request is for.
const FunctionHeader = "x-cairn-function"

// fragment is one Route, translated and ready to be merged.
type fragment struct {
	key        types.NamespacedName
	generation int64
	created    time.Time
	// hostnames the entries serve; empty means every hostname.
	hostnames []string
	entries   []*entry
	clusters  map[string]*clusterv3.Cluster
	endpoints map[string]*endpointv3.ClusterLoadAssignment
	auth      *authConfig
	filters   map[string]bool // HTTP filters the Envoy listener needs
}

// entry is one (rule, match) pair: a route entry in each flavor.
type entry struct {
	where       string // "rules[i].matches[j]" for messages
	spec        specificity
	canonical   string
	envoy, grpc *routev3.Route
}

func translateRoute(rt *gatewayv1alpha1.Route, idx *index, opts Options) (*fragment, error) {
	f := &fragment{
		key:        key(rt.Namespace, rt.Name),
		generation: rt.Generation,
		created:    rt.CreationTimestamp.Time,
		clusters:   map[string]*clusterv3.Cluster{},
		endpoints:  map[string]*endpointv3.ClusterLoadAssignment{},
		filters:    map[string]bool{},
	}
	for _, h := range rt.Spec.Hostnames {
		f.hostnames = append(f.hostnames, string(h))
	}
	sort.Strings(f.hostnames)

	policy, ok := idx.authPolicyFor(rt)
	if !ok {
		return nil, problemf(ReasonRefNotFound, "authPolicyRef: AuthPolicy %q not found; the route is not served unprotected", rt.Spec.AuthPolicyRef.Name)
	}
	if policy != nil {
		// A policy its controller rejected (e.g. private keys in its JWKS)
		// is not half-used: the route waits for it to be fixed.
		if c := meta.FindStatusCondition(policy.Status.Conditions, "Accepted"); c != nil && c.Status == metav1.ConditionFalse && c.ObservedGeneration == policy.Generation {
			return nil, problemf(ReasonRefNotAccepted, "AuthPolicy %q is not accepted (%s); the route is not served unprotected", policy.Name, c.Message)
		}
		auth, err := translateAuthPolicy(policy, opts)
		if err != nil {
			return nil, err
		}
		f.auth = auth
		f.addClusters(auth.clusters, auth.endpoints)
	}

	// Every problem of the route is reported at once, matches first.
	var errs []error
	for i, rule := range rt.Spec.Rules {
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gatewayv1alpha1.RouteMatch{defaultMatch}
		}
		translated := make([]translatedMatch, len(matches))
		for j, m := range matches {
			tm, err := translateMatch(m)
			if err != nil {
				errs = append(errs, fmt.Errorf("rules[%d].matches[%d].%w", i, j, err))
			}
			translated[j] = tm
		}
		action, err := f.routeAction(rt, rule, idx, opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("rules[%d].%w", i, err))
		}
		perFilter, err := f.perFilterConfigs(rt, rule, idx)
		if err != nil {
			errs = append(errs, fmt.Errorf("rules[%d].%w", i, err))
		}
		if len(errs) > 0 {
			continue
		}
		for j, tm := range translated {
			name := fmt.Sprintf("%s/%s/%d/%d", rt.Namespace, rt.Name, i, j)
			f.entries = append(f.entries, &entry{
				where:     fmt.Sprintf("rules[%d].matches[%d]", i, j),
				spec:      tm.spec,
				canonical: tm.canonical,
				envoy: &routev3.Route{
					Name: name, Match: tm.envoy,
					Action:               &routev3.Route_Route{Route: action.envoy},
					TypedPerFilterConfig: perFilter.envoy,
				},
				grpc: &routev3.Route{
					Name: name, Match: tm.grpc,
					Action:               &routev3.Route_Route{Route: action.grpc},
					TypedPerFilterConfig: perFilter.grpc,
				},
			})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f, nil
}

func (f *fragment) addClusters(cs []*clusterv3.Cluster, eps []*endpointv3.ClusterLoadAssignment) {
	for _, c := range cs {
		f.clusters[c.Name] = c
	}
	for _, e := range eps {
		f.endpoints[e.ClusterName] = e
	}
}

type actionPair struct{ envoy, grpc *routev3.RouteAction }

func (f *fragment) routeAction(rt *gatewayv1alpha1.Route, rule gatewayv1alpha1.RouteRule, idx *index, opts Options) (actionPair, error) {
	policy := trafficPolicy{CircuitBreaker: rule.CircuitBreaker, OutlierDetection: rule.OutlierDetection}
	var weighted []*routev3.WeightedCluster_ClusterWeight
	for j, b := range rule.Backends {
		weight := uint32(1)
		if b.Weight != nil {
			weight = uint32(*b.Weight)
		}
		if weight == 0 {
			continue
		}
		cw := &routev3.WeightedCluster_ClusterWeight{Weight: wrapperspb.UInt32(weight)}
		switch {
		case b.Service != nil:
			name, err := f.serviceBackend(rt.Namespace, b.Service, policy, idx)
			if err != nil {
				return actionPair{}, fmt.Errorf("backends[%d]: %w", j, err)
			}
			cw.Name = name
		case b.Function != nil:
			if _, ok := idx.functions[key(rt.Namespace, b.Function.Name)]; !ok {
				return actionPair{}, problemf(ReasonBackendNotFound, "backends[%d]: Function %q not found", j, b.Function.Name)
			}
			if opts.FunctionHost == nil {
				return actionPair{}, problemf(ReasonUnsupported, "backends[%d]: Function %q cannot be served: the gateway has no function host configured", j, b.Function.Name)
			}
			c, cla := staticCluster(FunctionHostCluster, *opts.FunctionHost, false)
			f.clusters[c.Name] = c
			if cla != nil {
				f.endpoints[cla.ClusterName] = cla
			}
			cw.Name = FunctionHostCluster
			cw.RequestHeadersToAdd = []*corev3.HeaderValueOption{{
				Header:       &corev3.HeaderValue{Key: FunctionHeader, Value: rt.Namespace + "/" + b.Function.Name},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			}}
		}
		weighted = append(weighted, cw)
	}
	if len(weighted) == 0 {
		return actionPair{}, problemf(ReasonInvalid, "backends: every backend has weight 0, so nothing can serve the rule")
	}
	envoy, grpc := &routev3.RouteAction{}, &routev3.RouteAction{}
	if len(weighted) == 1 && len(weighted[0].RequestHeadersToAdd) == 0 {
		envoy.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: weighted[0].Name}
		grpc.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: weighted[0].Name}
	} else {
		envoy.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: weighted}}
		// The flavors share the (read-only) cluster weights.
		grpc.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: weighted}}
	}
	if err := applyTimeoutsAndRetries(rule, envoy, grpc); err != nil {
		return actionPair{}, err
	}
	return actionPair{envoy, grpc}, nil
}

// serviceBackend resolves a Service port to its cluster, creating the
// cluster and its endpoints on first use.
func (f *fragment) serviceBackend(ns string, b *gatewayv1alpha1.ServiceBackend, policy trafficPolicy, idx *index) (string, error) {
	svc, ok := idx.services[key(ns, b.Name)]
	if !ok {
		return "", problemf(ReasonBackendNotFound, "Service %q not found", b.Name)
	}
	if svc.Spec.Type == "ExternalName" {
		return "", problemf(ReasonUnsupported, "Service %q is of type ExternalName, which routes cannot target", b.Name)
	}
	portName, found := "", false
	for _, p := range svc.Spec.Ports {
		if p.Port == b.Port {
			portName, found = p.Name, true
		}
	}
	if !found {
		return "", problemf(ReasonBackendNotFound, "Service %q has no port %d", b.Name, b.Port)
	}
	name := fmt.Sprintf("%s/%s:%d%s", ns, b.Name, b.Port, policy.suffix())
	built, ok := idx.clusters[name]
	if !ok {
		c, cla, err := serviceCluster(name, policy, serviceEndpoints(idx.slices[key(ns, b.Name)], portName))
		if err != nil {
			return "", err
		}
		built = builtCluster{c, cla}
		idx.clusters[name] = built
	}
	f.clusters[name] = built.cluster
	f.endpoints[name] = built.endpoints
	return name, nil
}

// grpcRetryOn are the retry conditions grpc-go implements (gRPC status codes).
var grpcRetryOn = map[gatewayv1alpha1.RetryOn]bool{"cancelled": true, "deadline-exceeded": true, "internal": true, "resource-exhausted": true, "unavailable": true}

func applyTimeoutsAndRetries(rule gatewayv1alpha1.RouteRule, envoy, grpc *routev3.RouteAction) error {
	var backendTimeout *time.Duration
	if t := rule.Timeouts; t != nil {
		if t.Request != nil {
			d, err := parseDuration(*t.Request)
			if err != nil {
				return fmt.Errorf("timeouts.request: %w", err)
			}
			envoy.Timeout = durationpb.New(d)
			// grpc-go ignores RouteAction.timeout and bounds streams instead.
			grpc.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(d)}
		}
		if t.Idle != nil {
			d, err := parseDuration(*t.Idle)
			if err != nil {
				return fmt.Errorf("timeouts.idle: %w", err)
			}
			envoy.IdleTimeout = durationpb.New(d)
		}
		if t.BackendRequest != nil {
			d, err := parseDuration(*t.BackendRequest)
			if err != nil {
				return fmt.Errorf("timeouts.backendRequest: %w", err)
			}
			backendTimeout = &d
		}
	}
	r := rule.Retry
	if r == nil {
		if backendTimeout != nil {
			// Without retries one attempt is the whole request.
			if envoy.Timeout == nil || envoy.Timeout.AsDuration() > *backendTimeout {
				envoy.Timeout = durationpb.New(*backendTimeout)
			}
		}
		return nil
	}
	policy := &routev3.RetryPolicy{NumRetries: wrapperspb.UInt32(uint32(r.Attempts))}
	var on []string
	var grpcOn []string
	for _, o := range r.RetryOn {
		on = append(on, string(o))
		if grpcRetryOn[o] {
			grpcOn = append(grpcOn, string(o))
		}
	}
	policy.RetryOn = strings.Join(on, ",")
	for _, code := range r.RetriableStatusCodes {
		policy.RetriableStatusCodes = append(policy.RetriableStatusCodes, uint32(code))
	}
	if r.PerTryTimeout != nil {
		d, err := parseDuration(*r.PerTryTimeout)
		if err != nil {
			return fmt.Errorf("retry.perTryTimeout: %w", err)
		}
		backendTimeout = &d
	}
	if backendTimeout != nil {
		policy.PerTryTimeout = durationpb.New(*backendTimeout)
	}
	if b := r.Backoff; b != nil {
		base, err := parseDuration(b.BaseInterval)
		if err != nil {
			return fmt.Errorf("retry.backoff.baseInterval: %w", err)
		}
		maxI, err := parseDuration(b.MaxInterval)
		if err != nil {
			return fmt.Errorf("retry.backoff.maxInterval: %w", err)
		}
		policy.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(base), MaxInterval: durationpb.New(maxI)}
	}
	envoy.RetryPolicy = policy
	if len(grpcOn) > 0 {
		g := proto.Clone(policy).(*routev3.RetryPolicy)
		g.RetryOn = strings.Join(grpcOn, ",")
		g.RetriableStatusCodes, g.PerTryTimeout = nil, nil
		grpc.RetryPolicy = g
	}
	return nil
}

type perFilterPair struct{ envoy, grpc map[string]*anypb.Any }

// perFilterConfigs builds the route-level configs of the optional HTTP
// filters. For gRPC clients, features they cannot enforce are sent as
// required so they are rejected, never silently dropped; browser-only
// features are optional.
func (f *fragment) perFilterConfigs(rt *gatewayv1alpha1.Route, rule gatewayv1alpha1.RouteRule, idx *index) (perFilterPair, error) {
	p := perFilterPair{envoy: map[string]*anypb.Any{}, grpc: map[string]*anypb.Any{}}
	add := func(filter string, cfg proto.Message, requiredForGRPC bool) error {
		a, err := anypb.New(cfg)
		if err != nil {
			return err
		}
		f.filters[filter] = true
		if filter == filterExtAuthz {
			// The filter is disabled on the listener; enable it here.
			wrapped, err := anypb.New(&routev3.FilterConfig{Config: a})
			if err != nil {
				return err
			}
			p.envoy[filter] = wrapped
		} else {
			p.envoy[filter] = a
		}
		g := a
		if !requiredForGRPC {
			if g, err = anypb.New(&routev3.FilterConfig{Config: a, IsOptional: true}); err != nil {
				return err
			}
		}
		p.grpc[filter] = g
		return nil
	}
	var err error
	if f.auth != nil {
		if f.auth.jwtRequirement != nil {
			err = add(filterJWT, jwtPerRoute(f.auth.policy), true)
		}
		if err == nil && f.auth.introspection {
			err = add(filterExtAuthz, extAuthzPerRoute(f.auth.policy), true)
		}
	}
	if err == nil && rule.RateLimit != nil {
		err = add(filterRateLimit, localRateLimit(rt, *rule.RateLimit), true)
	}
	if err == nil && rule.CORS != nil {
		var cors proto.Message
		if cors, err = corsPolicy(*rule.CORS); err == nil {
			err = add(filterCORS, cors, false)
		}
	}
	if err == nil && rule.GRPCTranscoding != nil {
		var t proto.Message
		if t, err = transcoder(rt.Namespace, *rule.GRPCTranscoding, idx); err == nil {
			err = add(filterTranscoder, t, false)
		}
	}
	if err != nil {
		return perFilterPair{}, err
	}
	if len(p.envoy) == 0 {
		return perFilterPair{}, nil
	}
	return p, nil
}

func localRateLimit(rt *gatewayv1alpha1.Route, rl gatewayv1alpha1.RateLimit) proto.Message {
	period := map[gatewayv1alpha1.RateLimitUnit]time.Duration{"Second": time.Second, "Minute": time.Minute, "Hour": time.Hour}[rl.Unit]
	if period == 0 {
		period = time.Second
	}
	burst := uint32(rl.Requests)
	if rl.Burst != nil {
		burst = uint32(*rl.Burst)
	}
	all := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
	return &ratelimitv3.LocalRateLimit{
		StatPrefix: "cairn_" + strings.ReplaceAll(rt.Namespace+"_"+rt.Name, "-", "_"),
		TokenBucket: &typev3.TokenBucket{
			MaxTokens:     burst,
			TokensPerFill: wrapperspb.UInt32(uint32(rl.Requests)),
			FillInterval:  durationpb.New(period),
		},
		FilterEnabled:  all,
		FilterEnforced: all,
	}
}

func corsPolicy(c gatewayv1alpha1.CORSPolicy) (proto.Message, error) {
	p := &corsv3.CorsPolicy{AllowCredentials: wrapperspb.Bool(c.AllowCredentials)}
	for _, o := range c.AllowOrigins {
		if o == "*" {
			p.AllowOriginStringMatch = append(p.AllowOriginStringMatch, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".*"}}})
			continue
		}
		p.AllowOriginStringMatch = append(p.AllowOriginStringMatch, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: o}})
	}
	var methods []string
	for _, m := range c.AllowMethods {
		methods = append(methods, string(m))
	}
	p.AllowMethods = strings.Join(methods, ",")
	p.AllowHeaders = strings.Join(c.AllowHeaders, ",")
	p.ExposeHeaders = strings.Join(c.ExposeHeaders, ",")
	if c.MaxAge != nil {
		d, err := parseDuration(*c.MaxAge)
		if err != nil {
			return nil, fmt.Errorf("cors.maxAge: %w", err)
		}
		p.MaxAge = fmt.Sprintf("%d", int64(d.Seconds()))
	}
	return p, nil
}

// transcoder reads the descriptor set and checks that it defines every
// service to transcode, so a wrong ConfigMap is reported on the Route instead
// of failing inside the proxy.
func transcoder(ns string, t gatewayv1alpha1.GRPCTranscoding, idx *index) (proto.Message, error) {
	cm, ok := idx.configMaps[key(ns, t.DescriptorSet.Name)]
	if !ok {
		return nil, problemf(ReasonDescriptorNotFound, "grpcTranscoding: descriptor ConfigMap %q not found", t.DescriptorSet.Name)
	}
	data, ok := cm.BinaryData[t.DescriptorSet.Key]
	if !ok {
		return nil, problemf(ReasonDescriptorNotFound, "grpcTranscoding: ConfigMap %q has no binaryData key %q", t.DescriptorSet.Name, t.DescriptorSet.Key)
	}
	var set descriptorpb.FileDescriptorSet
	// The protobuf runtime's error text is deliberately unstable, so it is
	// not repeated in a message users (and golden files) compare.
	if err := proto.Unmarshal(data, &set); err != nil {
		return nil, problemf(ReasonInvalidDescriptor, "grpcTranscoding: %s/%s is not a binary FileDescriptorSet (protoc --descriptor_set_out)", t.DescriptorSet.Name, t.DescriptorSet.Key)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, problemf(ReasonInvalidDescriptor, "grpcTranscoding: descriptor set %s/%s is incomplete (build it with --include_imports): %w", t.DescriptorSet.Name, t.DescriptorSet.Key, err)
	}
	for _, svc := range t.Services {
		if _, err := files.FindDescriptorByName(protoreflect.FullName(svc)); err != nil {
			return nil, problemf(ReasonInvalidDescriptor, "grpcTranscoding: descriptor set %s/%s does not define service %q", t.DescriptorSet.Name, t.DescriptorSet.Key, svc)
		}
	}
	return &transcoderv3.GrpcJsonTranscoder{
		DescriptorSet:     &transcoderv3.GrpcJsonTranscoder_ProtoDescriptorBin{ProtoDescriptorBin: data},
		Services:          t.Services,
		ConvertGrpcStatus: true,
		PrintOptions:      &transcoderv3.GrpcJsonTranscoder_PrintOptions{AlwaysPrintPrimitiveFields: true},
	}, nil
}
