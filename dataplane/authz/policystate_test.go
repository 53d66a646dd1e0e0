package authz

import (
	"strings"
	"testing"
)

func TestPolicyStateTracksTenantsUpToTheCap(t *testing.T) {
	st := newPolicyState("p", Policy{Breaker: BreakerConfig{FailureThreshold: 1, HalfOpenProbes: 1}}, 1, 2, newFakeClock().Now)
	a, b := st.slot("a"), st.slot("b")
	if a.label != "a" || b.label != "b" || a.breaker == b.breaker {
		t.Fatalf("first two tenants: %+v %+v, want their own labels and breakers", a, b)
	}
	if again := st.slot("a"); again.breaker != a.breaker {
		t.Fatal("a known tenant got a new breaker")
	}
	c, d := st.slot("c"), st.slot("d")
	if c.label != otherTenant || d.label != otherTenant || c.breaker != d.breaker || c.breaker == a.breaker {
		t.Fatalf("tenants past the cap: %+v %+v, want one shared %q breaker", c, d, otherTenant)
	}
}

func TestPolicyStateLabelDoesNotTrack(t *testing.T) {
	st := newPolicyState("p", Policy{}, 1, 100, newFakeClock().Now)
	if got := st.label("a"); got != otherTenant {
		t.Fatalf("label of an untracked tenant = %q, want %q", got, otherTenant)
	}
	st.slot("a")
	if got := st.label("a"); got != "a" {
		t.Fatalf("label of a tracked tenant = %q, want a", got)
	}
	if got := st.label("b"); got != otherTenant {
		t.Fatalf("label of an untracked b = %q, want %q", got, otherTenant)
	}
	if got := st.slot("b").label; got != "b" {
		t.Fatalf("slot of b = %q after label: label must not use up a slot", got)
	}
}

func TestPolicyStateNeverTracksUnlabelableTenants(t *testing.T) {
	st := newPolicyState("p", Policy{}, 1, 100, newFakeClock().Now)
	for _, tenant := range []string{"\xff\xfe", strings.Repeat("t", maxTenantLen+1), otherTenant} {
		if s := st.slot(tenant); s.label != otherTenant {
			t.Errorf("tenant %q tracked as %q, want %q", tenant, s.label, otherTenant)
		}
	}
	if s := st.slot(strings.Repeat("t", maxTenantLen)); s.label == otherTenant {
		t.Error("a tenant of the maximum length is not tracked")
	}
}

func TestPolicyStateEachBreaker(t *testing.T) {
	st := newPolicyState("p", Policy{}, 1, 1, newFakeClock().Now)
	seen := map[string]int{}
	each := func() {
		clear(seen)
		st.eachBreaker(func(label string, _ *breaker) { seen[label]++ })
	}
	each()
	if len(seen) != 0 {
		t.Fatalf("fresh state has breakers %v", seen)
	}
	st.slot("a")
	st.slot("b")
	each()
	if len(seen) != 2 || seen["a"] != 1 || seen[otherTenant] != 1 {
		t.Fatalf("breakers %v, want a and %s once each", seen, otherTenant)
	}
}
