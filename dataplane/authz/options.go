package authz

import (
	"cmp"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of the server options.
const (
	DefaultCacheSize           = 10000
	DefaultMaxTenantsPerPolicy = 1000
)

// Option configures a Server. Options given nil or non-positive values keep
// the default.
type Option func(*options)

type options struct {
	httpClient     *http.Client
	now            func() time.Time
	registerer     prometheus.Registerer
	logger         logr.Logger
	tracerProvider trace.TracerProvider
	cacheSize      int
	maxTenants     int
}

func defaultOptions() options {
	return options{
		httpClient:     defaultHTTPClient(),
		now:            time.Now,
		logger:         logr.Discard(),
		tracerProvider: otel.GetTracerProvider(),
		cacheSize:      DefaultCacheSize,
		maxTenants:     DefaultMaxTenantsPerPolicy,
	}
}

// WithHTTPClient sets the client for introspection calls, for custom TLS
// roots or proxies. Per-call timeouts come from the policy.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) { o.httpClient = cmp.Or(c, o.httpClient) }
}

// WithClock sets the clock of cache expiry and breakers.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithRegisterer registers the metrics there. Without it they are kept but
// not exported.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *options) { o.registerer = r }
}

// WithLogger sets the logger.
func WithLogger(l logr.Logger) Option { return func(o *options) { o.logger = l } }

// WithTracerProvider sets where spans go; the global provider by default.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = cmp.Or(tp, o.tracerProvider) }
}

// WithCacheSize bounds the introspection cache, in entries, across policies.
func WithCacheSize(n int) Option {
	return func(o *options) { o.cacheSize = cmp.Or(max(n, 0), o.cacheSize) }
}

// WithMaxTenantsPerPolicy bounds the tenants with their own breaker and
// metric labels, per policy.
func WithMaxTenantsPerPolicy(n int) Option {
	return func(o *options) { o.maxTenants = cmp.Or(max(n, 0), o.maxTenants) }
}

func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Every call of a policy goes to one host; the default of 2 idle
	// connections per host would mean new TLS handshakes under load.
	t.MaxIdleConnsPerHost = 64
	return &http.Client{
		Transport: t,
		// A redirect would resend the token and, to the same host, the client
		// credentials: treat it as a failed call instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
