package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
)

// Flavor is the kind of xDS client a set of resources is shaped for.
type Flavor string

const (
	// FlavorEnvoy is an Envoy proxy: socket listener, full filter chain.
	FlavorEnvoy Flavor = "envoy"
	// FlavorGRPC is a proxyless grpc-go client: API listeners, router only.
	FlavorGRPC Flavor = "grpc"
)

// Address is a host and port the proxies can reach.
type Address struct {
	Host string
	Port uint32
}

// Tracing sends Envoy's spans to an OTLP/gRPC collector.
type Tracing struct {
	Collector   Address
	ServiceName string
	// SamplePercent of requests traced (0-100).
	SamplePercent float64
}

// Options are gateway-wide settings, not derived from Routes.
type Options struct {
	// ListenerPort is the Envoy listener's port (default 10080).
	ListenerPort uint32
	// FunctionHost serves Function backends; nil makes them unresolvable.
	FunctionHost *Address
	// Authz is Cairn's ext_authz service for OAuth2 introspection.
	Authz *Address
	// Tracing, when set, configures Envoy's OpenTelemetry tracer.
	Tracing *Tracing
}

// Input is everything one gateway's configuration depends on. Objects not
// referenced by a Route of the gateway are ignored.
type Input struct {
	Gateway        string
	Routes         []gatewayv1alpha1.Route
	AuthPolicies   []gatewayv1alpha1.AuthPolicy
	Services       []corev1.Service
	EndpointSlices []discoveryv1.EndpointSlice
	Functions      []serverlessv1alpha1.Function
	// ConfigMaps holding gRPC descriptor sets.
	ConfigMaps []corev1.ConfigMap
	// Excluded routes are left out of a flavor at the given generation, e.g.
	// because that flavor's clients rejected them.
	Excluded map[Flavor]map[types.NamespacedName]int64
	Options  Options
}

// Resources are the xDS resources of one flavor, each list sorted by name.
type Resources struct {
	Listeners    []*listenerv3.Listener
	RouteConfigs []*routev3.RouteConfiguration
	Clusters     []*clusterv3.Cluster
	Endpoints    []*endpointv3.ClusterLoadAssignment
}

// RouteResult is the outcome for one Route.
type RouteResult struct {
	Generation int64
	// Err explains why the route was left out of every flavor; nil when it
	// was translated.
	Err error
	// Reason classifies Err.
	Reason Reason
	// Excluded lists the flavors the route was left out of on request.
	Excluded []Flavor
}

// Result is a gateway's translated configuration.
type Result struct {
	Envoy  Resources
	GRPC   Resources
	Routes map[types.NamespacedName]RouteResult
}

// Resources returns the resources of a flavor.
func (r *Result) Resources(f Flavor) Resources {
	if f == FlavorGRPC {
		return r.GRPC
	}
	return r.Envoy
}
