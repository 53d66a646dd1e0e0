package authz

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a check, the "result" label of cairn_authz_checks_total and the
// cairn.authz.result span attribute.
const (
	resultAllowed         = "allowed"         // valid token
	resultDenied          = "denied"          // 403: insufficient scope, unknown policy
	resultUnauthenticated = "unauthenticated" // 401: no token, inactive token
	resultFailureAllowed  = "failure_allowed" // endpoint unavailable, failure mode Allow
	resultFailureDenied   = "failure_denied"  // endpoint unavailable, failure mode Deny (503)
)

// Outcomes of an introspection call, the "outcome" label of
// cairn_authz_introspection_requests_total.
const (
	outcomeActive   = "active"
	outcomeInactive = "inactive"
	outcomeError    = "error"    // transport error, timeout, 5xx, 429, malformed answer
	outcomeRejected = "rejected" // other 4xx: our request was refused
)

// unknownLabel stands for the policy and tenant of a check naming no known
// policy: such IDs must not mint series.
const unknownLabel = "unknown"

type metrics struct {
	checks         *prometheus.CounterVec
	introspections *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	cache          *prometheus.CounterVec
	breakers       *breakerCollector
}

func newMetrics(policies func() map[string]*policyState) *metrics {
	return &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_authz_checks_total",
			Help: "Authorization checks, by policy, tenant and result.",
		}, []string{"policy", "tenant", "result"}),
		introspections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_authz_introspection_requests_total",
			Help: "Calls to introspection endpoints, by policy, tenant and outcome.",
		}, []string{"policy", "tenant", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cairn_authz_introspection_duration_seconds",
			Help:    "Latency of calls to introspection endpoints, by policy and tenant.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"policy", "tenant"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_authz_cache_lookups_total",
			Help: "introspection cache lookups, by policy and result (hit or miss).",
		}, []string{"policy", "result"}),
		breakers: &breakerCollector{
			desc: prometheus.NewDesc("cairn_authz_breaker_state",
				"State of the introspection circuit breaker: 0 closed, 1 half-open, 2 open.",
				[]string{"policy", "tenant"}, nil),
			policies: policies,
		},
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.checks, m.introspections, m.latency, m.cache, m.breakers} {
		errs = append(errs, r.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("registering authz metrics: %w", err)
	}
	return nil
}

// forget drops the series of a policy that was removed or replaced, so that
// tenants tracked by earlier versions do not add up past the cap.
func (m *metrics) forget(policy string) {
	l := prometheus.Labels{"policy": policy}
	m.checks.DeletePartialMatch(l)
	m.introspections.DeletePartialMatch(l)
	m.latency.DeletePartialMatch(l)
	m.cache.DeletePartialMatch(l)
}

// breakerCollector reports breaker states when scraped, rather than keeping
// a gauge in step with every transition: an open breaker becomes half-open
// by the passing of time alone, and removed policies vanish by themselves.
type breakerCollector struct {
	desc     *prometheus.Desc
	policies func() map[string]*policyState
}

func (c *breakerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *breakerCollector) Collect(ch chan<- prometheus.Metric) {
	for id, st := range c.policies() {
		st.eachBreaker(func(tenant string, b *breaker) {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(b.current()), id, tenant)
		})
	}
}
