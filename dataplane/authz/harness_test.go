package authz

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	testClientID     = "cairn"
	testClientSecret = "s3cret:%with-odd-chars"
	testTenantHeader = "x-tenant"
)

// idp is a real RFC 7662 introspection endpoint on loopback. Tokens it was
// not told about are inactive.
type idp struct {
	srv   *httptest.Server
	total atomic.Int64

	mu      sync.Mutex
	answers map[string]answer
	calls   map[string]int
	gate    chan struct{} // while non-nil, requests wait for it to close
}

type answer struct {
	status int
	body   string
}

func newIDP(tb testing.TB) *idp {
	d := &idp{answers: map[string]answer{}, calls: map[string]int{}}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	tb.Cleanup(d.srv.Close)
	return d
}

func (d *idp) serve(w http.ResponseWriter, r *http.Request) {
	token := r.PostFormValue("token")
	d.total.Add(1)
	d.mu.Lock()
	d.calls[token]++
	a, known := d.answers[token]
	gate := d.gate
	d.mu.Unlock()
	if gate != nil {
		<-gate
	}

	user, pass, _ := r.BasicAuth()
	user, _ = url.QueryUnescape(user)
	pass, _ = url.QueryUnescape(pass)
	switch {
	case r.Method != http.MethodPost || r.PostFormValue("token_type_hint") != "access_token":
		a = answer{http.StatusBadRequest, `{"error":"invalid_request"}`}
	case user != testClientID || pass != testClientSecret:
		a = answer{http.StatusUnauthorized, `{"error":"invalid_client"}`}
	case !known:
		a = answer{http.StatusOK, `{"active":false}`}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = w.Write([]byte(a.body))
}

// active makes token valid until exp, with the given scopes.
func (d *idp) active(token, subject, scope string, exp time.Time) {
	body, _ := json.Marshal(map[string]any{
		"active": true, "sub": subject, "client_id": "shop", "username": subject + "@example.com",
		"scope": scope, "exp": exp.Unix(),
	})
	d.set(token, answer{http.StatusOK, string(body)})
}

func (d *idp) set(token string, a answer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.answers[token] = a
}

func (d *idp) fail(token string, status int) {
	d.set(token, answer{status, `{"error":"server_error"}`})
}

func (d *idp) callsFor(token string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[token]
}

// hold makes requests wait until the returned function is called.
func (d *idp) hold(tb testing.TB) (release func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	gate := make(chan struct{})
	d.gate = gate
	var once sync.Once
	release = func() {
		once.Do(func() {
			d.mu.Lock()
			d.gate = nil
			d.mu.Unlock()
			close(gate)
		})
	}
	tb.Cleanup(release) // before srv.Close, which waits for handlers
	return release
}

// policy is a policy for this endpoint, reading the tenant from x-tenant.
func (d *idp) policy() Policy {
	return Policy{Endpoint: d.srv.URL, ClientID: testClientID, ClientSecret: testClientSecret, TenantHeader: testTenantHeader}
}

// harness is a Server behind a real gRPC server on loopback, a client for
// it, a fake clock and a metrics registry.
type harness struct {
	tb     testing.TB
	clock  *fakeClock
	reg    *prometheus.Registry
	srv    *Server
	client authv3.AuthorizationClient
	logs   *logSink

	mu     sync.Mutex
	tokens []string // every token sent, to check none is logged
}

func newHarness(tb testing.TB, policies map[string]Policy, opts ...Option) *harness {
	tb.Helper()
	h := &harness{tb: tb, clock: newFakeClock(), reg: prometheus.NewRegistry(), logs: &logSink{}}
	srv, err := New(append([]Option{WithClock(h.clock.Now), WithRegisterer(h.reg), WithLogger(h.logs.logger())}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.SetPolicies(policies); err != nil {
		tb.Fatal(err)
	}
	h.srv = srv

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	gs := grpc.NewServer()
	srv.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	tb.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	h.client = authv3.NewAuthorizationClient(conn)

	tb.Cleanup(func() { h.logs.assertNoSecrets(tb, append(h.sentTokens(), testClientSecret)) })
	return h
}

// check asks for a request of tenant (none when empty) with a bearer token
// (none when empty) on a route of policy.
func (h *harness) check(policy, tenant, token string) *authv3.CheckResponse {
	h.tb.Helper()
	resp, err := h.client.Check(context.Background(), h.request(policy, tenant, token))
	if err != nil {
		h.tb.Fatalf("Check: %v", err)
	}
	return resp
}

func (h *harness) request(policy, tenant, token string) *authv3.CheckRequest {
	headers := map[string]string{}
	if tenant != "" {
		headers[testTenantHeader] = tenant
	}
	if token != "" {
		headers["authorization"] = "Bearer " + token
		h.mu.Lock()
		h.tokens = append(h.tokens, token)
		h.mu.Unlock()
	}
	return checkRequest(policy, headers)
}

func (h *harness) sentTokens() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.tokens...)
}

// logSink keeps every log line.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (s *logSink) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.lines = append(s.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 1})
}

// contains reports whether a line has all the parts.
func (s *logSink) contains(parts ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

func (s *logSink) assertNoSecrets(tb testing.TB, secrets []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		for _, secret := range secrets {
			if strings.Contains(l, secret) {
				tb.Errorf("log line reveals %q: %s", secret, l)
			}
		}
	}
}

// logID is how logs name a token.
func logID(token string) string { return tokenID(sha256.Sum256([]byte(token))) }

// waitFor polls cond for up to 5 s.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
