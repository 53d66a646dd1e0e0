package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
)

// AuthPolicySpec authenticates requests to the Routes it guards, with JWTs
// checked in the proxy and/or OAuth2 tokens introspected by Cairn's ext_authz
// service.
// +kubebuilder:validation:XValidation:rule="has(self.jwt) || has(self.oauth2Introspection)",message="set at least one of jwt or oauth2Introspection"
// +kubebuilder:validation:XValidation:rule="!has(self.tenantKey) || !has(self.tenantKey.claim) || has(self.jwt)",message="tenantKey.claim requires jwt: claims are only known after JWT validation"
type AuthPolicySpec struct {
	// TargetRefs are Routes in this namespace this policy guards. A Route's own
	// authPolicyRef takes precedence over this list.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	TargetRefs []common.LocalObjectReference `json:"targetRefs,omitempty"`

	// JWT validates bearer tokens in the proxy (Envoy jwt_authn).
	// +optional
	JWT *JWTAuth `json:"jwt,omitempty"`

	// OAuth2Introspection validates opaque tokens with an RFC 7662 endpoint.
	// +optional
	OAuth2Introspection *OAuth2Introspection `json:"oauth2Introspection,omitempty"`

	// TenantKey identifies the tenant of a request; the introspection breaker
	// and metrics are kept per tenant so one failing tenant cannot take the
	// others down.
	// +optional
	TenantKey *TenantKey `json:"tenantKey,omitempty"`

	// Breaker protects the introspection endpoint, per tenant.
	// +optional
	Breaker *BreakerPolicy `json:"breaker,omitempty"`

	// FailureMode decides what happens when the introspection endpoint cannot
	// be asked (down, timing out, breaker open): Deny answers 503, Allow lets the
	// request through unauthenticated.
	// +kubebuilder:default=Deny
	// +optional
	FailureMode FailureMode `json:"failureMode,omitempty"`
}

// FailureMode is the answer when the authorization service is unavailable.
// +kubebuilder:validation:Enum=Deny;Allow
type FailureMode string

const (
	// FailureModeDeny fails closed.
	FailureModeDeny FailureMode = "Deny"
	// FailureModeAllow fails open.
	FailureModeAllow FailureMode = "Allow"
)

// JWTAuth lists the accepted token issuers.
type JWTAuth struct {
	// Providers are tried in order; a token must satisfy one of them.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	Providers []JWTProvider `json:"providers"`

	// Optional lets requests without a token through (invalid tokens are still
	// rejected).
	// +optional
	Optional bool `json:"optional,omitempty"`
}

// JWTProvider is one token issuer and the keys that sign its tokens.
type JWTProvider struct {
	// Name identifies the provider.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Issuer must equal the token's "iss" claim.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Issuer string `json:"issuer"`

	// Audiences: the token's "aud" must contain one of them. Empty accepts any.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	Audiences []string `json:"audiences,omitempty"`

	// JWKS holds or locates the issuer's public keys.
	JWKS JWKSSource `json:"jwks"`

	// ClaimToHeaders copies claims of a valid token into request headers for
	// the backend.
	// +optional
	// +listType=map
	// +listMapKey=header
	// +kubebuilder:validation:MaxItems=16
	ClaimToHeaders []ClaimToHeader `json:"claimToHeaders,omitempty"`

	// ForwardToken keeps the Authorization header on the forwarded request.
	// +optional
	ForwardToken bool `json:"forwardToken,omitempty"`
}

// JWKSSource is an inline JSON Web Key Set or an HTTPS URI to fetch it from.
// +kubebuilder:validation:XValidation:rule="has(self.inline) != has(self.remote)",message="jwks must set exactly one of inline or remote"
type JWKSSource struct {
	// Inline is a JWKS document (RFC 7517), public keys only.
	// +optional
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=65536
	Inline *string `json:"inline,omitempty"`

	// Remote fetches the JWKS from the issuer.
	// +optional
	Remote *RemoteJWKS `json:"remote,omitempty"`
}

// RemoteJWKS is a JWKS endpoint.
type RemoteJWKS struct {
	// URI of the JWKS, https only: keys fetched in clear text could be forged.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname() != ''",message="uri must be an absolute https URL"
	URI string `json:"uri"`

	// CacheDuration keeps fetched keys this long.
	// +kubebuilder:default="10m"
	// +optional
	CacheDuration common.Duration `json:"cacheDuration,omitempty"`

	// Timeout of one fetch.
	// +kubebuilder:default="5s"
	// +optional
	Timeout common.Duration `json:"timeout,omitempty"`
}

// ClaimToHeader copies one claim into one request header.
type ClaimToHeader struct {
	// Claim name; nested claims use dots ("realm_access.roles").
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Claim string `json:"claim"`

	// Header to set.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`
	Header string `json:"header"`
}

// OAuth2Introspection checks opaque access tokens with an RFC 7662 endpoint.
type OAuth2Introspection struct {
	// Endpoint is the introspection URL. Use https outside of tests: client
	// credentials and tokens are sent to it.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http'] && url(self).getHostname() != ''",message="endpoint must be an absolute http(s) URL"
	Endpoint string `json:"endpoint"`

	// ClientSecretRef names a Secret with keys "clientID" and "clientSecret"
	// used for HTTP basic authentication to the endpoint.
	ClientSecretRef common.LocalObjectReference `json:"clientSecretRef"`

	// CacheTTL keeps an introspection answer this long (never past the token's
	// own expiry).
	// +kubebuilder:default="60s"
	// +optional
	CacheTTL common.Duration `json:"cacheTTL,omitempty"`

	// Timeout of one introspection call.
	// +kubebuilder:default="2s"
	// +optional
	Timeout common.Duration `json:"timeout,omitempty"`

	// RequiredScopes must all be in the token's scope.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	RequiredScopes []string `json:"requiredScopes,omitempty"`
}

// TenantKey says where the tenant of a request is read from.
// +kubebuilder:validation:XValidation:rule="has(self.header) != has(self.claim)",message="tenantKey must set exactly one of header or claim"
type TenantKey struct {
	// Header carrying the tenant ID.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`
	Header *string `json:"header,omitempty"`

	// Claim of the validated JWT carrying the tenant ID.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Claim *string `json:"claim,omitempty"`
}

// BreakerPolicy is a circuit breaker per tenant: closed until
// FailureThreshold consecutive failures, then open for OpenDuration (requests
// get the failure mode), then half-open: up to HalfOpenProbes concurrent
// requests test the endpoint; the first success closes the breaker, a
// failure opens it again.
type BreakerPolicy struct {
	// FailureThreshold consecutive failures open the breaker.
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	FailureThreshold int32 `json:"failureThreshold,omitempty"`

	// OpenDuration before probing again.
	// +kubebuilder:default="30s"
	// +optional
	OpenDuration common.Duration `json:"openDuration,omitempty"`

	// HalfOpenProbes is how many requests may probe the endpoint at once
	// while half-open.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	HalfOpenProbes int32 `json:"halfOpenProbes,omitempty"`
}

// AuthPolicyStatus is the observed state of an AuthPolicy.
type AuthPolicyStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Accepted (valid, Secret and targets resolve), Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// AuthPolicy authenticates requests to Routes with JWTs and OAuth2 token
// introspection.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=authpol,categories={cairn,cairn-gateway}
// +kubebuilder:printcolumn:name="JWT-Provider",type=string,JSONPath=`.spec.jwt.providers[0].issuer`,priority=1
// +kubebuilder:printcolumn:name="Introspection",type=string,JSONPath=`.spec.oauth2Introspection.endpoint`,priority=1
// +kubebuilder:printcolumn:name="Failure-Mode",type=string,JSONPath=`.spec.failureMode`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AuthPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AuthPolicySpec   `json:"spec"`
	Status AuthPolicyStatus `json:"status,omitempty"`
}

// AuthPolicyList is a list of AuthPolicies.
// +kubebuilder:object:root=true
type AuthPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AuthPolicy `json:"items"`
}
