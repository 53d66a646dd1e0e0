package authz

import (
	"sync"
	"time"
	"unicode/utf8"
)

// otherTenant labels, and shares one breaker among, the tenants of a policy
// beyond the ones it tracks.
const otherTenant = "other"

// maxTenantLen bounds a tracked tenant ID; longer ones are not plausible
// IDs and would make unwieldy metric labels.
const maxTenantLen = 256

// policyState is a policy and the breakers of its tenants. SetPolicies
// replaces it whole when the policy changes, which resets its breakers and,
// through gen, its cache entries.
type policyState struct {
	id         string
	policy     Policy
	gen        uint64 // unique per state; part of every cache key
	maxTenants int
	now        func() time.Time

	mu       sync.RWMutex
	tenants  map[string]*breaker
	overflow *breaker // nil until a tenant overflows
}

// tenantSlot is how a tenant is tracked: its metric label and its breaker.
type tenantSlot struct {
	label   string
	breaker *breaker
}

func newPolicyState(id string, p Policy, gen uint64, maxTenants int, now func() time.Time) *policyState {
	return &policyState{id: id, policy: p, gen: gen, maxTenants: maxTenants, now: now, tenants: make(map[string]*breaker)}
}

// slot tracks tenant, first come first served up to maxTenants. Tenants that
// are not valid UTF-8 or too long are never tracked (Prometheus refuses such
// label values), nor is one literally named "other", whose label would clash.
func (s *policyState) slot(tenant string) tenantSlot {
	s.mu.RLock()
	b, ok := s.tenants[tenant]
	s.mu.RUnlock()
	if ok {
		return tenantSlot{label: tenant, breaker: b}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.tenants[tenant]; ok {
		return tenantSlot{label: tenant, breaker: b}
	}
	if len(s.tenants) < s.maxTenants && trackable(tenant) {
		b := newBreaker(s.policy.Breaker, s.now)
		s.tenants[tenant] = b
		return tenantSlot{label: tenant, breaker: b}
	}
	if s.overflow == nil {
		s.overflow = newBreaker(s.policy.Breaker, s.now)
	}
	return tenantSlot{label: otherTenant, breaker: s.overflow}
}

// label is the metric label of tenant, without tracking it.
func (s *policyState) label(tenant string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.tenants[tenant]; ok {
		return tenant
	}
	return otherTenant
}

// eachBreaker calls f for every breaker of the policy, overflow included.
func (s *policyState) eachBreaker(f func(label string, b *breaker)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for tenant, b := range s.tenants {
		f(tenant, b)
	}
	if s.overflow != nil {
		f(otherTenant, s.overflow)
	}
}

func trackable(tenant string) bool {
	return tenant != otherTenant && len(tenant) <= maxTenantLen && utf8.ValidString(tenant)
}
