package authz

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
)

const (
	shop     = "shop/auth"
	partners = "partners/auth"
)

func (h *harness) checks(policy, tenant, result string) float64 {
	return testutil.ToFloat64(h.srv.metrics.checks.WithLabelValues(policy, tenant, result))
}

func (h *harness) introspections(policy, tenant, outcome string) float64 {
	return testutil.ToFloat64(h.srv.metrics.introspections.WithLabelValues(policy, tenant, outcome))
}

func (h *harness) cacheLookups(policy, result string) float64 {
	return testutil.ToFloat64(h.srv.metrics.cache.WithLabelValues(policy, result))
}

// wantBreakers compares every breaker gauge, as scraped, with lines of
// "policy tenant state".
func (h *harness) wantBreakers(lines ...string) {
	h.tb.Helper()
	want := "# HELP cairn_authz_breaker_state State of the introspection circuit breaker: 0 closed, 1 half-open, 2 open.\n" +
		"# TYPE cairn_authz_breaker_state gauge\n"
	for _, l := range lines {
		var policy, tenant string
		var state int
		if _, err := fmt.Sscan(l, &policy, &tenant, &state); err != nil {
			h.tb.Fatalf("bad breaker line %q: %v", l, err)
		}
		want += fmt.Sprintf("cairn_authz_breaker_state{policy=%q,tenant=%q} %d\n", policy, tenant, state)
	}
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(want), "cairn_authz_breaker_state"); err != nil {
		h.tb.Fatal(err)
	}
}

func wantOK(t *testing.T, resp *authv3.CheckResponse) map[string]string {
	t.Helper()
	return upstreamHeaders(t, resp)
}

func wantUnavailable(t *testing.T, resp *authv3.CheckResponse) {
	t.Helper()
	deniedWith(t, resp, codes.Unavailable, typev3.StatusCode_ServiceUnavailable)
}

func TestActiveTokenIsAllowedWithIdentityHeaders(t *testing.T) {
	d := newIDP(t)
	h := newHarness(t, map[string]Policy{shop: d.policy()})
	d.active("tk_ada", "ada", "orders:read orders:write", h.clock.Now().Add(time.Hour))

	resp := h.check(shop, "acme", "tk_ada")
	headers := wantOK(t, resp)
	want := map[string]string{
		HeaderSubject: "ada", HeaderClientID: "shop", HeaderUsername: "ada@example.com",
		HeaderScope: "orders:read orders:write", HeaderTenant: "acme",
	}
	for k, v := range want {
		if headers[k] != v {
			t.Errorf("%s = %q, want %q", k, headers[k], v)
		}
	}
	if !slices.Contains(resp.GetOkResponse().GetHeadersToRemove(), HeaderDegraded) {
		t.Errorf("a client-sent %s is not removed", HeaderDegraded)
	}
	if got := d.callsFor("tk_ada"); got != 1 {
		t.Errorf("endpoint asked %d times, want 1", got)
	}
	if got := h.checks(shop, "acme", resultAllowed); got != 1 {
		t.Errorf("allowed checks = %v, want 1", got)
	}
	if got := h.introspections(shop, "acme", outcomeActive); got != 1 {
		t.Errorf("active introspections = %v, want 1", got)
	}
	if got := testutil.CollectAndCount(h.srv.metrics.latency); got != 1 {
		t.Errorf("latency series = %d, want 1", got)
	}

	// Without a tenant header the request belongs to the default tenant.
	if got := wantOK(t, h.check(shop, "", "tk_ada"))[HeaderTenant]; got != DefaultTenant {
		t.Errorf("tenant = %q, want %q", got, DefaultTenant)
	}
}

func TestInactiveTokenIsUnauthenticatedAndBrieflyCached(t *testing.T) {
	d := newIDP(t)
	h := newHarness(t, map[string]Policy{shop: d.policy()})

	for range 2 {
		headers := deniedWith(t, h.check(shop, "acme", "tk_revoked"), codes.Unauthenticated, typev3.StatusCode_Unauthorized)
		if got := headers["www-authenticate"]; got != `Bearer error="invalid_token"` {
			t.Errorf("www-authenticate = %q", got)
		}
	}
	if got := d.callsFor("tk_revoked"); got != 1 {
		t.Fatalf("endpoint asked %d times, want 1: the negative answer is not cached", got)
	}
	h.clock.Advance(negativeCacheTTL)
	h.check(shop, "acme", "tk_revoked")
	if got := d.callsFor("tk_revoked"); got != 2 {
		t.Fatalf("endpoint asked %d times, want 2: the negative answer outlived %v", got, negativeCacheTTL)
	}
	if got := h.checks(shop, "acme", resultUnauthenticated); got != 3 {
		t.Errorf("unauthenticated checks = %v, want 3", got)
	}
	if got := h.introspections(shop, "acme", outcomeInactive); got != 2 {
		t.Errorf("inactive introspections = %v, want 2", got)
	}
}

func TestMissingTokenIsUnauthenticated(t *testing.T) {
	d := newIDP(t)
	h := newHarness(t, map[string]Policy{shop: d.policy()})
	d.active("tk_ada", "ada", "", h.clock.Now().Add(time.Hour))

	requests := []*authv3.CheckRequest{
		h.request(shop, "acme", ""),
		checkRequest(shop, map[string]string{"authorization": "Basic Y2Fpcm46cGFzcw==", testTenantHeader: "acme"}),
		checkRequest(shop, map[string]string{"authorization": "Bearer   ", testTenantHeader: "acme"}),
	}
	for _, req := range requests {
		resp, err := h.client.Check(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		headers := deniedWith(t, resp, codes.Unauthenticated, typev3.StatusCode_Unauthorized)
		if got := headers["www-authenticate"]; got != "Bearer" {
			t.Errorf("www-authenticate = %q, want Bearer", got)
		}
	}
	if got := d.total.Load(); got != 0 {
		t.Errorf("endpoint asked %d times without a token", got)
	}
	// Requests without a token do not claim a tenant slot...
	if got := h.checks(shop, otherTenant, resultUnauthenticated); got != 3 {
		t.Errorf("unauthenticated checks of an untracked tenant = %v, want 3", got)
	}
	// ...but are labelled with a tenant already tracked.
	wantOK(t, h.check(shop, "acme", "tk_ada"))
	deniedWith(t, h.check(shop, "acme", ""), codes.Unauthenticated, typev3.StatusCode_Unauthorized)
	if got := h.checks(shop, "acme", resultUnauthenticated); got != 1 {
		t.Errorf("unauthenticated checks of acme = %v, want 1", got)
	}
}

func TestInsufficientScopeIsForbidden(t *testing.T) {
	d := newIDP(t)
	p := d.policy()
	p.RequiredScopes = []string{"orders:read", "orders:write"}
	h := newHarness(t, map[string]Policy{shop: p})
	d.active("tk_reader", "ada", "orders:read", h.clock.Now().Add(time.Hour))

	headers := deniedWith(t, h.check(shop, "acme", "tk_reader"), codes.PermissionDenied, typev3.StatusCode_Forbidden)
	if got, want := headers["www-authenticate"], `Bearer error="insufficient_scope", scope="orders:write"`; got != want {
		t.Errorf("www-authenticate = %q, want %q", got, want)
	}
	if got := h.checks(shop, "acme", resultDenied); got != 1 {
		t.Errorf("denied checks = %v, want 1", got)
	}
}

func TestUnknownPolicyIsForbidden(t *testing.T) {
	d := newIDP(t)
	h := newHarness(t, map[string]Policy{shop: d.policy()})

	resp := h.check("nobody/here", "acme", "tk_x")
	deniedWith(t, resp, codes.PermissionDenied, typev3.StatusCode_Forbidden)
	if body := resp.GetDeniedResponse().GetBody(); !strings.Contains(body, `no authorization policy "nobody/here"`) {
		t.Errorf("body = %q, want it to name the policy", body)
	}
	deniedWith(t, h.check("", "acme", "tk_x"), codes.PermissionDenied, typev3.StatusCode_Forbidden)
	if got := h.checks(unknownLabel, unknownLabel, resultDenied); got != 2 {
		t.Errorf("denied checks of unknown policies = %v, want 2", got)
	}
	if got := d.total.Load(); got != 0 {
		t.Errorf("endpoint asked %d times for unknown policies", got)
	}
}

func TestCacheHitsMakeNoCallsUntilTheTTL(t *testing.T) {
	d := newIDP(t)
	p := d.policy()
	p.CacheTTL = 30 * time.Second
	h := newHarness(t, map[string]Policy{shop: p})
	d.active("tk_ada", "ada", "", h.clock.Now().Add(time.Hour))

	for range 3 {
		wantOK(t, h.check(shop, "acme", "tk_ada"))
	}
	if got := d.callsFor("tk_ada"); got != 1 {
		t.Fatalf("endpoint asked %d times for 3 checks, want 1", got)
	}
	if hits, misses := h.cacheLookups(shop, "hit"), h.cacheLookups(shop, "miss"); hits != 2 || misses != 1 {
		t.Errorf("cache hits/misses = %v/%v, want 2/1", hits, misses)
	}

	h.clock.Advance(30*time.Second - time.Nanosecond)
	wantOK(t, h.check(shop, "acme", "tk_ada"))
	if got := d.callsFor("tk_ada"); got != 1 {
		t.Fatalf("endpoint asked %d times within the TTL, want 1", got)
	}
	h.clock.Advance(time.Nanosecond)
	wantOK(t, h.check(shop, "acme", "tk_ada"))
	if got := d.callsFor("tk_ada"); got != 2 {
		t.Fatalf("endpoint asked %d times after the TTL, want 2", got)
	}
}

func TestCacheNeverOutlivesTheToken(t *testing.T) {
	d := newIDP(t)
	h := newHarness(t, map[string]Policy{shop: d.policy()}) // TTL 60s
	d.active("tk_short", "ada", "", h.clock.Now().Add(5*time.Second))

	wantOK(t, h.check(shop, "acme", "tk_short"))
	h.clock.Advance(4 * time.Second)
	wantOK(t, h.check(shop, "acme", "tk_short"))
	if got := d.callsFor("tk_short"); got != 1 {
		t.Fatalf("endpoint asked %d times before exp, want 1", got)
	}
	h.clock.Advance(time.Second)
	deniedWith(t, h.check(shop, "acme", "tk_short"), codes.Unauthenticated, typev3.StatusCode_Unauthorized)
	if got := d.callsFor("tk_short"); got != 2 {
		t.Fatalf("endpoint asked %d times after exp, want 2: the cache outlived the token", got)
	}
}

func TestConcurrentChecksOfOneTokenMakeOneCall(t *testing.T) {
	d := newIDP(t)
	h := newHarness(t, map[string]Policy{shop: d.policy()})
	d.active("tk_ada", "ada", "", h.clock.Now().Add(time.Hour))
	release := d.hold(t)

	const n = 16
	resps := make([]*authv3.CheckResponse, n)
	var wg sync.WaitGroup
	for i := range n {
		req := h.request(shop, "acme", "tk_ada")
		wg.Go(func() {
			resp, err := h.client.Check(context.Background(), req)
			if err != nil {
				t.Errorf("Check: %v", err)
			}
			resps[i] = resp
		})
	}
	// Every check has missed the cache while the one call is held open.
	waitFor(t, "all checks to miss the cache", func() bool { return h.cacheLookups(shop, "miss") == n })
	release()
	wg.Wait()

	for _, resp := range resps {
		wantOK(t, resp)
	}
	if got := d.callsFor("tk_ada"); got != 1 {
		t.Fatalf("endpoint asked %d times for %d concurrent checks, want 1", got, n)
	}
}

// breakerPolicy opens after 3 failures for 30 s.
func breakerPolicy(d *idp) Policy {
	p := d.policy()
	p.Breaker = BreakerConfig{FailureThreshold: 3, OpenDuration: 30 * time.Second, HalfOpenProbes: 1}
	return p
}

// openBreaker fails three introspections of tenant on policy. The endpoint
// fails only that tenant's tokens, as when its realm is broken.
func openBreaker(t *testing.T, h *harness, d *idp, policy, tenant string) {
	t.Helper()
	for i := range 3 {
		token := fmt.Sprintf("tk_%s_fail_%d", tenant, i)
		d.fail(token, http.StatusInternalServerError)
		wantUnavailable(t, h.check(policy, tenant, token))
		if got := d.callsFor(token); got != 1 {
			t.Fatalf("failure %d: endpoint asked %d times, want 1", i, got)
		}
	}
}

func TestBreakerOpensForTheFailingTenantOnly(t *testing.T) {
	d := newIDP(t)
	h := newHarness(t, map[string]Policy{shop: breakerPolicy(d), partners: breakerPolicy(d)})
	exp := h.clock.Now().Add(time.Hour)

	openBreaker(t, h, d, shop, "acme")
	h.wantBreakers(shop + " acme 2")
	if !h.logs.contains("introspection circuit breaker changed state", `"to"="open"`, `"tenant"="acme"`) {
		t.Error("opening the breaker was not logged")
	}

	// Open: acme's checks get the failure mode without a call, even with a
	// token the endpoint would accept.
	d.active("tk_acme_good", "ada", "", exp)
	wantUnavailable(t, h.check(shop, "acme", "tk_acme_good"))
	if got := d.callsFor("tk_acme_good"); got != 0 {
		t.Fatalf("endpoint asked %d times through an open breaker", got)
	}

	// Another tenant of the same policy is still introspected.
	d.active("tk_globex", "grace", "", exp)
	wantOK(t, h.check(shop, "globex", "tk_globex"))
	// The same tenant on another policy too.
	wantOK(t, h.check(partners, "acme", "tk_acme_good"))
	if got := d.callsFor("tk_acme_good"); got != 1 {
		t.Fatalf("endpoint asked %d times for acme on %s, want 1", got, partners)
	}

	h.wantBreakers(shop+" acme 2", shop+" globex 0", partners+" acme 0")
	if got := h.checks(shop, "acme", resultFailureDenied); got != 4 {
		t.Errorf("failure_denied checks = %v, want 4", got)
	}
	if got := h.introspections(shop, "acme", outcomeError); got != 3 {
		t.Errorf("failed introspections = %v, want 3", got)
	}
	if got := h.checks(shop, "globex", resultAllowed); got != 1 {
		t.Errorf("globex allowed checks = %v, want 1", got)
	}
	if got := h.introspections(shop, "globex", outcomeActive); got != 1 {
		t.Errorf("globex active introspections = %v, want 1", got)
	}
}

func TestBreakerProbeSuccessCloses(t *testing.T) {
	d := newIDP(t)
	h := newHarness(t, map[string]Policy{shop: breakerPolicy(d)})
	exp := h.clock.Now().Add(time.Hour)
	openBreaker(t, h, d, shop, "acme")

	h.clock.Advance(30 * time.Second)
	h.wantBreakers(shop + " acme 1")
	d.active("tk_probe", "ada", "", exp)
	wantOK(t, h.check(shop, "acme", "tk_probe"))
	h.wantBreakers(shop + " acme 0")

	// Closed again: a failure is one of three, not enough to reopen.
	d.fail("tk_again", http.StatusBadGateway)
	wantUnavailable(t, h.check(shop, "acme", "tk_again"))
	d.active("tk_after", "ada", "", exp)
	wantOK(t, h.check(shop, "acme", "tk_after"))
	if got := d.callsFor("tk_after"); got != 1 {
		t.Fatalf("endpoint asked %d times after closing, want 1", got)
	}
}

func TestBreakerProbeFailureReopens(t *testing.T) {
	d := newIDP(t)
	h := newHarness(t, map[string]Policy{shop: breakerPolicy(d)})
	exp := h.clock.Now().Add(time.Hour)
	openBreaker(t, h, d, shop, "acme")

	h.clock.Advance(30 * time.Second)
	d.fail("tk_probe", http.StatusServiceUnavailable)
	wantUnavailable(t, h.check(shop, "acme", "tk_probe"))
	if got := d.callsFor("tk_probe"); got != 1 {
		t.Fatalf("endpoint asked %d times for the probe, want 1", got)
	}
	h.wantBreakers(shop + " acme 2")

	d.active("tk_next", "ada", "", exp)
	wantUnavailable(t, h.check(shop, "acme", "tk_next"))
	if got := d.callsFor("tk_next"); got != 0 {
		t.Fatalf("endpoint asked %d times right after the probe failed", got)
	}
	h.clock.Advance(30 * time.Second)
	wantOK(t, h.check(shop, "acme", "tk_next"))
	h.wantBreakers(shop + " acme 0")
}

func TestEndpointDownWithFailureModeAllow(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	p := Policy{Endpoint: down.URL, ClientID: testClientID, ClientSecret: testClientSecret, TenantHeader: testTenantHeader,
		FailureMode: FailureModeAllow, Breaker: BreakerConfig{FailureThreshold: 2}}
	h := newHarness(t, map[string]Policy{"edge/auth": p})

	for i := range 3 {
		resp := h.check("edge/auth", "acme", fmt.Sprintf("tk_%d", i))
		headers := wantOK(t, resp)
		if headers[HeaderDegraded] != "true" || headers[HeaderTenant] != "acme" || headers[HeaderSubject] != "" {
			t.Errorf("check %d: upstream headers %v, want degraded with no identity", i, headers)
		}
		for _, id := range identityHeaders {
			if !slices.Contains(resp.GetOkResponse().GetHeadersToRemove(), id) {
				t.Errorf("check %d: a client-sent %s would reach the backend", i, id)
			}
		}
	}
	if got := h.introspections("edge/auth", "acme", outcomeError); got != 2 {
		t.Errorf("failed introspections = %v, want 2 before the breaker opened", got)
	}
	if got := h.checks("edge/auth", "acme", resultFailureAllowed); got != 3 {
		t.Errorf("failure_allowed checks = %v, want 3", got)
	}
	h.wantBreakers("edge/auth acme 2")
	if !h.logs.contains("introspection failed", "connection refused", `"token"="`+logID("tk_0")+`"`) {
		t.Error("the transport failure was not logged with the token's hash")
	}
}

func TestTimeoutAndMalformedAnswersAreFailures(t *testing.T) {
	d := newIDP(t)
	p := d.policy()
	p.Timeout = 50 * time.Millisecond
	p.Breaker.FailureThreshold = 2
	h := newHarness(t, map[string]Policy{shop: p})

	d.set("tk_garbled", answer{http.StatusOK, "<html>oops</html>"})
	wantUnavailable(t, h.check(shop, "acme", "tk_garbled"))
	h.wantBreakers(shop + " acme 0")

	d.hold(t)
	start := time.Now()
	wantUnavailable(t, h.check(shop, "acme", "tk_slow"))
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("a 50ms introspection timeout took %v", elapsed)
	}
	h.wantBreakers(shop + " acme 2")
	if got := h.introspections(shop, "acme", outcomeError); got != 2 {
		t.Errorf("failed introspections = %v, want 2", got)
	}
}

func TestEndpointRefusingOurCredentialsIsAFailureLoggedAsSuch(t *testing.T) {
	d := newIDP(t)
	p := d.policy()
	p.ClientSecret = "wrong"
	h := newHarness(t, map[string]Policy{shop: p})

	wantUnavailable(t, h.check(shop, "acme", "tk_ada"))
	if got := h.introspections(shop, "acme", outcomeRejected); got != 1 {
		t.Errorf("rejected introspections = %v, want 1", got)
	}
	if !h.logs.contains("refused our request", "check the policy's client credentials", "HTTP 401", logID("tk_ada")) {
		t.Errorf("the refusal was not logged as such: %q", h.logs.lines)
	}
	if h.logs.contains(`"msg"="introspection failed"`) {
		t.Error("a refusal was logged as a plain failure")
	}
}

func TestSetPolicies(t *testing.T) {
	d := newIDP(t)
	h := newHarness(t, map[string]Policy{shop: d.policy()})
	d.active("tk_ada", "ada", "orders:read", h.clock.Now().Add(time.Hour))
	wantOK(t, h.check(shop, "acme", "tk_ada"))

	// Unchanged: the cache survives.
	if err := h.srv.SetPolicies(map[string]Policy{shop: d.policy()}); err != nil {
		t.Fatal(err)
	}
	wantOK(t, h.check(shop, "acme", "tk_ada"))
	if got := d.callsFor("tk_ada"); got != 1 {
		t.Fatalf("endpoint asked %d times after re-setting the same policy, want 1", got)
	}

	// Changed: the new requirement applies at once, with a fresh answer.
	changed := d.policy()
	changed.RequiredScopes = []string{"orders:write"}
	if err := h.srv.SetPolicies(map[string]Policy{shop: changed, partners: {Endpoint: "not a url"}}); err == nil ||
		!strings.Contains(err.Error(), partners) || strings.Contains(err.Error(), shop) {
		t.Fatalf("err = %v, want one about %s only", err, partners)
	}
	deniedWith(t, h.check(shop, "acme", "tk_ada"), codes.PermissionDenied, typev3.StatusCode_Forbidden)
	if got := d.callsFor("tk_ada"); got != 2 {
		t.Fatalf("endpoint asked %d times after the policy changed, want 2", got)
	}
	// The invalid policy is left out: its routes are denied.
	deniedWith(t, h.check(partners, "acme", "tk_ada"), codes.PermissionDenied, typev3.StatusCode_Forbidden)

	// The change dropped the series of the old version: left are the 403 of
	// the new one and that of the unknown policy. (Counted before reading
	// any, as reading a series creates it.)
	if got := testutil.CollectAndCount(h.srv.metrics.checks); got != 2 {
		t.Fatalf("check series = %d before removal, want 2", got)
	}
	if got := h.checks(shop, "acme", resultDenied); got != 1 {
		t.Errorf("denied checks = %v under the new policy, want 1", got)
	}

	// Removed: denied, and its series are gone.
	if err := h.srv.SetPolicies(nil); err != nil {
		t.Fatal(err)
	}
	if got := testutil.CollectAndCount(h.srv.metrics.checks); got != 1 {
		t.Errorf("check series = %d after removal, want only the unknown-policy one", got)
	}
	deniedWith(t, h.check(shop, "acme", "tk_ada"), codes.PermissionDenied, typev3.StatusCode_Forbidden)
	h.wantBreakers()
}

func TestSetPoliciesRejectsUnlabelableIDs(t *testing.T) {
	d := newIDP(t)
	h := newHarness(t, nil)
	if err := h.srv.SetPolicies(map[string]Policy{"": d.policy(), "\xff": d.policy()}); err == nil {
		t.Fatal("empty and non-UTF-8 policy IDs accepted")
	}
}

func TestTenantsBeyondTheCapShareOneLabelAndBreaker(t *testing.T) {
	d := newIDP(t)
	h := newHarness(t, map[string]Policy{shop: d.policy()}, WithMaxTenantsPerPolicy(2))
	d.active("tk_ada", "ada", "", h.clock.Now().Add(time.Hour))

	for _, tenant := range []string{"t1", "t2", "t3", "t4", "other"} {
		if got := wantOK(t, h.check(shop, tenant, "tk_ada"))[HeaderTenant]; got != tenant {
			t.Errorf("upstream tenant = %q, want the request's %q", got, tenant)
		}
	}
	if got := testutil.CollectAndCount(h.srv.metrics.checks); got != 3 {
		t.Errorf("check series = %d, want 3", got)
	}
	for tenant, want := range map[string]float64{"t1": 1, "t2": 1, otherTenant: 3} {
		if got := h.checks(shop, tenant, resultAllowed); got != want {
			t.Errorf("allowed checks of %s = %v, want %v", tenant, got, want)
		}
	}
	h.wantBreakers(shop+" t1 0", shop+" t2 0", shop+" other 0")
}

func TestNewFailsWhenTheMetricsAreAlreadyRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(WithRegisterer(reg)); err != nil {
		t.Fatal(err)
	}
	if _, err := New(WithRegisterer(reg)); err == nil || !strings.Contains(err.Error(), "registering authz metrics") {
		t.Fatalf("err = %v, want a registration error", err)
	}
}
