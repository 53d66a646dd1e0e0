package authz

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults for the zero values of a Policy, matching the AuthPolicy API.
const (
	DefaultCacheTTL         = 60 * time.Second
	DefaultTimeout          = 2 * time.Second
	DefaultFailureThreshold = 5
	DefaultOpenDuration     = 30 * time.Second
	DefaultHalfOpenProbes   = 1
	DefaultTenant           = "default"
)

// FailureMode is the answer when the introspection endpoint cannot be asked.
type FailureMode string

const (
	// FailureModeDeny answers 503: fail closed. It is the default.
	FailureModeDeny FailureMode = "Deny"
	// FailureModeAllow lets the request through, marked as degraded.
	FailureModeAllow FailureMode = "Allow"
)

// Policy is how one AuthPolicy validates tokens. Zero values take the
// Default* constants.
type Policy struct {
	// Endpoint is the absolute http(s) URL of the RFC 7662 endpoint.
	Endpoint string
	// ClientID and ClientSecret authenticate this service to the endpoint
	// with HTTP basic authentication.
	ClientID     string
	ClientSecret string
	// CacheTTL bounds how long an answer is reused; the token's own expiry
	// bounds it too.
	CacheTTL time.Duration
	// Timeout bounds one introspection call.
	Timeout time.Duration
	// RequiredScopes must all be in the token's scope.
	RequiredScopes []string
	// TenantHeader names the request header holding the tenant ID; for a JWT
	// claim, the header the claim was copied into. Empty puts every request
	// in DefaultTenant.
	TenantHeader string
	// Breaker guards the endpoint, per tenant.
	Breaker BreakerConfig
	// FailureMode applies when the endpoint cannot be asked.
	FailureMode FailureMode
}

// redactedPolicy is a Policy without its methods, for printing.
type redactedPolicy Policy

// String prints the policy without its client secret, so a policy that ends
// up in a log or an error does not leak it.
func (p Policy) String() string { return fmt.Sprintf("%+v", p.MarshalLog()) }

// GoString is String, for %#v.
func (p Policy) GoString() string { return p.String() }

// MarshalLog implements logr.Marshaler, hiding the client secret.
func (p Policy) MarshalLog() any {
	if p.ClientSecret != "" {
		p.ClientSecret = "[redacted]"
	}
	return redactedPolicy(p)
}

// BreakerConfig configures a circuit breaker.
type BreakerConfig struct {
	// FailureThreshold consecutive failures open the breaker.
	FailureThreshold int
	// OpenDuration is how long it stays open before probing.
	OpenDuration time.Duration
	// HalfOpenProbes is how many calls may probe the endpoint at once while
	// half-open; the first to succeed closes the breaker.
	HalfOpenProbes int
}

// normalize fills in defaults and checks the policy. Header names are
// lower-cased because Envoy sends them that way.
func (p Policy) normalize() (Policy, error) {
	var errs []error
	u, err := url.Parse(p.Endpoint)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("endpoint: %w", err))
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		errs = append(errs, fmt.Errorf("endpoint %q: must be an absolute http(s) URL", p.Endpoint))
	}
	if p.ClientID == "" {
		errs = append(errs, errors.New("clientID is empty"))
	}
	p.TenantHeader = strings.ToLower(p.TenantHeader)
	p.RequiredScopes = slices.Clone(p.RequiredScopes)
	p.CacheTTL = orDefault(p.CacheTTL, DefaultCacheTTL, "cacheTTL", &errs)
	p.Timeout = orDefault(p.Timeout, DefaultTimeout, "timeout", &errs)
	p.Breaker.OpenDuration = orDefault(p.Breaker.OpenDuration, DefaultOpenDuration, "breaker.openDuration", &errs)
	p.Breaker.FailureThreshold = orDefault(p.Breaker.FailureThreshold, DefaultFailureThreshold, "breaker.failureThreshold", &errs)
	p.Breaker.HalfOpenProbes = orDefault(p.Breaker.HalfOpenProbes, DefaultHalfOpenProbes, "breaker.halfOpenProbes", &errs)
	switch p.FailureMode {
	case "":
		p.FailureMode = FailureModeDeny
	case FailureModeDeny, FailureModeAllow:
	default:
		errs = append(errs, fmt.Errorf("failureMode %q: must be %s or %s", p.FailureMode, FailureModeDeny, FailureModeAllow))
	}
	return p, errors.Join(errs...)
}

// equal reports whether two normalized policies are the same, so that
// SetPolicies keeps the cache and breakers of unchanged ones.
func (p Policy) equal(q Policy) bool {
	return p.Endpoint == q.Endpoint &&
		p.ClientID == q.ClientID &&
		p.ClientSecret == q.ClientSecret &&
		p.CacheTTL == q.CacheTTL &&
		p.Timeout == q.Timeout &&
		slices.Equal(p.RequiredScopes, q.RequiredScopes) &&
		p.TenantHeader == q.TenantHeader &&
		p.Breaker == q.Breaker &&
		p.FailureMode == q.FailureMode
}

func orDefault[T int | time.Duration](v, def T, field string, errs *[]error) T {
	switch {
	case v < 0:
		*errs = append(*errs, fmt.Errorf("%s: must not be negative", field))
		return def
	case v == 0:
		return def
	default:
		return v
	}
}
