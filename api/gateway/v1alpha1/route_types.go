package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
)

// RouteSpec describes how requests reaching a gateway are matched and sent to
// backends.
type RouteSpec struct {
	// GatewayRef selects the Envoy fleet that serves this route. Proxies whose
	// xDS node cluster equals the gateway name receive it.
	GatewayRef GatewayReference `json:"gatewayRef"`

	// Hostnames the route answers for, matched against the Host/:authority
	// header. A leading "*." matches any single-label-or-deeper subdomain.
	// Empty means every hostname.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	Hostnames []Hostname `json:"hostnames,omitempty"`

	// Rules are evaluated in order of match specificity (exact path, then
	// longest prefix, then regular expression, then the number of header and
	// query matches), ties broken by their order here.
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Rules []RouteRule `json:"rules"`

	// AuthPolicyRef names an AuthPolicy in the same namespace that guards every
	// rule of this route. It takes precedence over AuthPolicies that target
	// this route through their targetRefs.
	// +optional
	AuthPolicyRef *common.LocalObjectReference `json:"authPolicyRef,omitempty"`
}

// GatewayReference names a gateway (an Envoy fleet identified by its xDS node
// cluster).
type GatewayReference struct {
	// Name of the gateway; a DNS label.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
}

// Hostname is a fully qualified domain name, optionally with a leading "*."
// wildcard label. IP addresses and ports are not allowed.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
type Hostname string

// RouteRule matches requests and forwards them to weighted backends with the
// given traffic policy.
type RouteRule struct {
	// Name labels the rule for people (status messages and xDS entries use
	// its index). Optional, but unique within the route when set.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name,omitempty"`

	// Matches are ORed: a request that satisfies any of them is selected.
	// Empty matches every request (path prefix "/").
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Matches []RouteMatch `json:"matches,omitempty"`

	// Backends receive the matched requests in proportion to their weights.
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.exists(b, !has(b.weight) || b.weight > 0)",message="at least one backend must have a weight greater than 0"
	Backends []Backend `json:"backends"`

	// Timeouts bound the request as seen by the client and by each backend.
	// +optional
	Timeouts *Timeouts `json:"timeouts,omitempty"`

	// Retry re-sends failed requests to a backend.
	// +optional
	Retry *RetryPolicy `json:"retry,omitempty"`

	// CircuitBreaker caps concurrent work towards each backend.
	// +optional
	CircuitBreaker *CircuitBreaker `json:"circuitBreaker,omitempty"`

	// OutlierDetection ejects misbehaving backend endpoints for a while.
	// +optional
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`

	// RateLimit applies a local token bucket per proxy to this rule.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`

	// GRPCTranscoding exposes gRPC backends as JSON/HTTP APIs.
	// +optional
	GRPCTranscoding *GRPCTranscoding `json:"grpcTranscoding,omitempty"`

	// CORS answers preflight requests and adds CORS response headers.
	// +optional
	CORS *CORSPolicy `json:"cors,omitempty"`
}

// RouteMatch selects requests. All set fields must match (AND).
type RouteMatch struct {
	// Path matches the request path. Defaults to prefix "/".
	// +optional
	Path *PathMatch `json:"path,omitempty"`

	// Headers must all match.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Headers []HeaderMatch `json:"headers,omitempty"`

	// Method matches the HTTP method.
	// +optional
	Method *HTTPMethod `json:"method,omitempty"`

	// QueryParams must all match.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	QueryParams []QueryParamMatch `json:"queryParams,omitempty"`
}

// PathMatchType is how a path is compared.
// +kubebuilder:validation:Enum=Exact;PathPrefix;RegularExpression
type PathMatchType string

const (
	// PathMatchExact matches the path exactly.
	PathMatchExact PathMatchType = "Exact"
	// PathMatchPrefix matches whole path segments: "/api" matches "/api" and
	// "/api/v1", not "/apix".
	PathMatchPrefix PathMatchType = "PathPrefix"
	// PathMatchRegularExpression matches the whole path with an RE2 expression.
	PathMatchRegularExpression PathMatchType = "RegularExpression"
)

// PathMatch matches the request path.
// +kubebuilder:validation:XValidation:rule="self.type == 'RegularExpression' || self.value.startsWith('/')",message="path must start with '/' unless type is RegularExpression"
// +kubebuilder:validation:XValidation:rule="self.type == 'RegularExpression' || !self.value.contains('?') && !self.value.contains('#')",message="path must not contain '?' or '#'; use queryParams to match the query"
type PathMatch struct {
	// Type of the match.
	// +kubebuilder:default=PathPrefix
	// +optional
	Type PathMatchType `json:"type,omitempty"`

	// Value is the path, prefix or RE2 expression.
	// +kubebuilder:default="/"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Value string `json:"value,omitempty"`
}

// StringMatchType is how a header or query value is compared.
// +kubebuilder:validation:Enum=Exact;RegularExpression;Present
type StringMatchType string

const (
	// StringMatchExact compares the value byte for byte.
	StringMatchExact StringMatchType = "Exact"
	// StringMatchRegularExpression matches the whole value with RE2.
	StringMatchRegularExpression StringMatchType = "RegularExpression"
	// StringMatchPresent only requires the header or parameter to be present.
	StringMatchPresent StringMatchType = "Present"
)

// HeaderMatch matches one request header (case-insensitive name).
// +kubebuilder:validation:XValidation:rule="self.type == 'Present' || has(self.value)",message="value is required unless type is Present"
type HeaderMatch struct {
	// Name of the header.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`
	Name string `json:"name"`

	// Type of the match.
	// +kubebuilder:default=Exact
	// +optional
	Type StringMatchType `json:"type,omitempty"`

	// Value to compare with.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Value *string `json:"value,omitempty"`
}

// QueryParamMatch matches one query parameter (case-sensitive name).
// +kubebuilder:validation:XValidation:rule="self.type == 'Present' || has(self.value)",message="value is required unless type is Present"
type QueryParamMatch struct {
	// Name of the query parameter.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name"`

	// Type of the match.
	// +kubebuilder:default=Exact
	// +optional
	Type StringMatchType `json:"type,omitempty"`

	// Value to compare with.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Value *string `json:"value,omitempty"`
}

// HTTPMethod is an HTTP request method.
// +kubebuilder:validation:Enum=GET;HEAD;POST;PUT;DELETE;CONNECT;OPTIONS;TRACE;PATCH
type HTTPMethod string

// Backend is a weighted destination: a Service port or a Function.
// +kubebuilder:validation:XValidation:rule="has(self.service) != has(self.function)",message="a backend must set exactly one of service or function"
type Backend struct {
	// Service sends traffic to the endpoints of a Service in the route's namespace.
	// +optional
	Service *ServiceBackend `json:"service,omitempty"`

	// Function sends traffic to a Function in the route's namespace, served by
	// the function hosts.
	// +optional
	Function *common.LocalObjectReference `json:"function,omitempty"`

	// Weight is the relative share of requests; 0 disables the backend.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	Weight *int32 `json:"weight,omitempty"`
}

// ServiceBackend is a port of a Service in the route's namespace.
type ServiceBackend struct {
	// Name of the Service.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Port is the Service port number.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
}

// Timeouts bound request durations. Omit a field to keep Envoy's default;
// "0s" disables that timeout.
// +kubebuilder:validation:XValidation:rule="!has(self.request) || !has(self.backendRequest) || duration(self.backendRequest) <= duration(self.request)",message="backendRequest must not be longer than request"
type Timeouts struct {
	// Request is the total time allowed for the request, retries included.
	// +optional
	Request *common.Duration `json:"request,omitempty"`

	// BackendRequest is the time allowed for one attempt to a backend.
	// +optional
	BackendRequest *common.Duration `json:"backendRequest,omitempty"`

	// Idle closes streams that see no activity for this long.
	// +optional
	Idle *common.Duration `json:"idle,omitempty"`
}

// RetryOn is a condition on which a request is retried (Envoy x-envoy-retry-on).
// +kubebuilder:validation:Enum="5xx";"gateway-error";"reset";"connect-failure";"retriable-4xx";"refused-stream";"retriable-status-codes";"unavailable";"cancelled";"deadline-exceeded";"resource-exhausted"
type RetryOn string

// RetryPolicy re-sends failed requests.
// +kubebuilder:validation:XValidation:rule="!has(self.retriableStatusCodes) || size(self.retriableStatusCodes) == 0 || self.retryOn.exists(o, o == 'retriable-status-codes')",message="retriableStatusCodes requires 'retriable-status-codes' in retryOn"
type RetryPolicy struct {
	// Attempts is the number of retries after the first try.
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	// +optional
	Attempts int32 `json:"attempts,omitempty"`

	// RetryOn lists the failures that trigger a retry. (Not "on": YAML 1.1
	// reads a bare on as the boolean true.)
	// +kubebuilder:default={"5xx","connect-failure","reset"}
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=11
	// +optional
	RetryOn []RetryOn `json:"retryOn,omitempty"`

	// RetriableStatusCodes are retried when "retriable-status-codes" is in retryOn.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Minimum=400
	// +kubebuilder:validation:items:Maximum=599
	RetriableStatusCodes []int32 `json:"retriableStatusCodes,omitempty"`

	// PerTryTimeout bounds each attempt.
	// +optional
	PerTryTimeout *common.Duration `json:"perTryTimeout,omitempty"`

	// Backoff between attempts (exponential with jitter).
	// +optional
	Backoff *RetryBackoff `json:"backoff,omitempty"`
}

// RetryBackoff is an exponential back-off between retries.
// +kubebuilder:validation:XValidation:rule="duration(self.baseInterval) <= duration(self.maxInterval)",message="baseInterval must not be longer than maxInterval"
type RetryBackoff struct {
	// BaseInterval is the first wait.
	// +kubebuilder:default="25ms"
	// +optional
	BaseInterval common.Duration `json:"baseInterval,omitempty"`

	// MaxInterval caps the wait.
	// +kubebuilder:default="250ms"
	// +optional
	MaxInterval common.Duration `json:"maxInterval,omitempty"`
}

// CircuitBreaker caps concurrent work from each proxy towards a backend
// cluster. Requests over a threshold fail fast with 503.
type CircuitBreaker struct {
	// MaxConnections to all endpoints of the backend.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxConnections *int32 `json:"maxConnections,omitempty"`

	// MaxPendingRequests waiting for a connection.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxPendingRequests *int32 `json:"maxPendingRequests,omitempty"`

	// MaxRequests in flight.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxRequests *int32 `json:"maxRequests,omitempty"`

	// MaxRetries in flight.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxRetries *int32 `json:"maxRetries,omitempty"`
}

// OutlierDetection ejects endpoints that keep failing.
type OutlierDetection struct {
	// Consecutive5xx errors that eject an endpoint.
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	// +optional
	Consecutive5xx int32 `json:"consecutive5xx,omitempty"`

	// Interval between ejection sweeps.
	// +kubebuilder:default="10s"
	// +optional
	Interval common.Duration `json:"interval,omitempty"`

	// BaseEjectionTime is multiplied by the number of times an endpoint was ejected.
	// +kubebuilder:default="30s"
	// +optional
	BaseEjectionTime common.Duration `json:"baseEjectionTime,omitempty"`

	// MaxEjectionPercent of the endpoints that may be ejected at once.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxEjectionPercent int32 `json:"maxEjectionPercent,omitempty"`
}

// RateLimitUnit is the period of a rate limit.
// +kubebuilder:validation:Enum=Second;Minute;Hour
type RateLimitUnit string

// RateLimit is a token bucket enforced by each proxy for the rule.
// +kubebuilder:validation:XValidation:rule="!has(self.burst) || self.burst >= self.requests",message="burst must be at least requests"
type RateLimit struct {
	// Requests allowed per unit.
	// +kubebuilder:validation:Minimum=1
	Requests int32 `json:"requests"`

	// Unit of time for requests.
	// +kubebuilder:default=Second
	// +optional
	Unit RateLimitUnit `json:"unit,omitempty"`

	// Burst is the bucket size; defaults to requests.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Burst *int32 `json:"burst,omitempty"`
}

// GRPCTranscoding maps JSON/HTTP requests onto gRPC methods using the
// google.api.http annotations of a protobuf descriptor set.
type GRPCTranscoding struct {
	// DescriptorSet is the key of a ConfigMap holding a binary
	// FileDescriptorSet (protoc --include_imports --descriptor_set_out).
	DescriptorSet common.KeySelector `json:"descriptorSet"`

	// Services are fully qualified gRPC service names to transcode.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$`
	Services []string `json:"services"`
}

// CORSPolicy configures cross-origin resource sharing.
type CORSPolicy struct {
	// AllowOrigins are exact origins ("https://app.example.com") or "*".
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^(\*|https?://[^/?#]+)$`
	AllowOrigins []string `json:"allowOrigins"`

	// AllowMethods for cross-origin requests.
	// +optional
	// +listType=set
	AllowMethods []HTTPMethod `json:"allowMethods,omitempty"`

	// AllowHeaders the browser may send.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	AllowHeaders []string `json:"allowHeaders,omitempty"`

	// ExposeHeaders the browser may read.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	ExposeHeaders []string `json:"exposeHeaders,omitempty"`

	// MaxAge the browser may cache a preflight answer.
	// +optional
	MaxAge *common.Duration `json:"maxAge,omitempty"`

	// AllowCredentials lets cookies and authorization headers through.
	// +optional
	AllowCredentials bool `json:"allowCredentials,omitempty"`
}

// RouteStatus is the observed state of a Route.
type RouteStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Accepted (valid, references resolve), Programmed (acknowledged
	// by the connected proxies, or their rejection), Ready (summary).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Route sends HTTP and gRPC requests that reach a gateway to Services or
// Functions.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rt,categories={cairn,cairn-gateway}
// +kubebuilder:printcolumn:name="Gateway",type=string,JSONPath=`.spec.gatewayRef.name`
// +kubebuilder:printcolumn:name="Hostnames",type=string,JSONPath=`.spec.hostnames`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Programmed",type=string,JSONPath=`.status.conditions[?(@.type=="Programmed")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.spec.rules.all(r, !has(r.name) || self.spec.rules.exists_one(o, has(o.name) && o.name == r.name))",message="rule names must be unique within a route"
type Route struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RouteSpec   `json:"spec"`
	Status RouteStatus `json:"status,omitempty"`
}

// RouteList is a list of Routes.
// +kubebuilder:object:root=true
type RouteList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Route `json:"items"`
}
