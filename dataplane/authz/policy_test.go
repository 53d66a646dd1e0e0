package authz

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
)

func validPolicy() Policy {
	return Policy{Endpoint: "https://idp.example.com/introspect", ClientID: "cairn", ClientSecret: "s3cret"}
}

func TestPolicyNormalizeFillsDefaults(t *testing.T) {
	p, err := validPolicy().normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := validPolicy()
	want.CacheTTL = DefaultCacheTTL
	want.Timeout = DefaultTimeout
	want.Breaker = BreakerConfig{FailureThreshold: DefaultFailureThreshold, OpenDuration: DefaultOpenDuration, HalfOpenProbes: DefaultHalfOpenProbes}
	want.FailureMode = FailureModeDeny
	if !p.equal(want) {
		t.Fatalf("normalized = %+v, want %+v", p, want)
	}
}

func TestPolicyNormalizeKeepsSetValuesAndLowercasesTheTenantHeader(t *testing.T) {
	in := validPolicy()
	in.CacheTTL, in.Timeout = 5*time.Second, time.Second
	in.Breaker = BreakerConfig{FailureThreshold: 2, OpenDuration: time.Minute, HalfOpenProbes: 4}
	in.FailureMode = FailureModeAllow
	in.TenantHeader = "X-Tenant"
	p, err := in.normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.TenantHeader = "x-tenant"
	if !p.equal(want) {
		t.Fatalf("normalized = %+v, want %+v", p, want)
	}
}

func TestPolicyNormalizeCopiesRequiredScopes(t *testing.T) {
	in := validPolicy()
	in.RequiredScopes = []string{"a"}
	p, err := in.normalize()
	if err != nil {
		t.Fatal(err)
	}
	in.RequiredScopes[0] = "changed by the caller"
	if p.RequiredScopes[0] != "a" {
		t.Fatal("the normalized policy shares the caller's scope slice")
	}
}

func TestPolicyNormalizeRejectsInvalidPolicies(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Policy)
		want   string
	}{
		"relative endpoint": {func(p *Policy) { p.Endpoint = "/introspect" }, "absolute http(s) URL"},
		"ftp endpoint":      {func(p *Policy) { p.Endpoint = "ftp://idp/introspect" }, "absolute http(s) URL"},
		"unparsable":        {func(p *Policy) { p.Endpoint = "https://idp/%zz" }, "endpoint"},
		"no client ID":      {func(p *Policy) { p.ClientID = "" }, "clientID is empty"},
		"negative TTL":      {func(p *Policy) { p.CacheTTL = -time.Second }, "cacheTTL: must not be negative"},
		"negative timeout":  {func(p *Policy) { p.Timeout = -1 }, "timeout: must not be negative"},
		"negative threshold": {func(p *Policy) { p.Breaker.FailureThreshold = -1 },
			"breaker.failureThreshold: must not be negative"},
		"negative open":   {func(p *Policy) { p.Breaker.OpenDuration = -1 }, "breaker.openDuration"},
		"negative probes": {func(p *Policy) { p.Breaker.HalfOpenProbes = -1 }, "breaker.halfOpenProbes"},
		"failure mode":    {func(p *Policy) { p.FailureMode = "Maybe" }, `failureMode "Maybe"`},
	} {
		t.Run(name, func(t *testing.T) {
			p := validPolicy()
			tc.mutate(&p)
			_, err := p.normalize()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestPolicyEqualSeesEveryField(t *testing.T) {
	base, err := validPolicy().normalize()
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Policy){
		"endpoint":  func(p *Policy) { p.Endpoint += "2" },
		"client ID": func(p *Policy) { p.ClientID += "2" },
		"secret":    func(p *Policy) { p.ClientSecret += "2" },
		"TTL":       func(p *Policy) { p.CacheTTL++ },
		"timeout":   func(p *Policy) { p.Timeout++ },
		"scopes":    func(p *Policy) { p.RequiredScopes = []string{"x"} },
		"tenant":    func(p *Policy) { p.TenantHeader = "x-tenant" },
		"breaker":   func(p *Policy) { p.Breaker.HalfOpenProbes++ },
		"mode":      func(p *Policy) { p.FailureMode = FailureModeAllow },
	} {
		changed := base
		mutate(&changed)
		if base.equal(changed) {
			t.Errorf("a policy with another %s is equal", name)
		}
	}
	if !base.equal(base) {
		t.Error("a policy is not equal to itself")
	}
}

func TestPolicyPrintingHidesTheSecret(t *testing.T) {
	p := validPolicy()
	var b strings.Builder
	log := funcr.New(func(prefix, args string) { b.WriteString(args) }, funcr.Options{})
	log.Info("policy", "policy", p)
	for _, s := range []string{p.String(), fmt.Sprintf("%v|%+v|%#v|%s", p, p, p, p), b.String()} {
		if strings.Contains(s, p.ClientSecret) || !strings.Contains(s, "[redacted]") || !strings.Contains(s, p.ClientID) {
			t.Errorf("printed policy %q reveals the secret or hides too much", s)
		}
	}
}
