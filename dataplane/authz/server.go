package authz

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc"
)

// Server is the ext_authz service. Create it with New, give it policies with
// SetPolicies and serve it with Register.
type Server struct {
	httpClient *http.Client
	now        func() time.Time
	log        logr.Logger
	tracer     trace.Tracer
	maxTenants int
	metrics    *metrics
	cache      *lru[cacheKey, introspection]
	flights    singleflight.Group

	// policies is read on every check and swapped whole by SetPolicies.
	policies atomic.Pointer[map[string]*policyState]
	setMu    sync.Mutex // serializes SetPolicies
	lastGen  uint64     // under setMu
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// New returns a Server with no policies: every check is denied until
// SetPolicies is called.
func New(opts ...Option) (*Server, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{
		httpClient: o.httpClient,
		now:        o.now,
		log:        o.logger,
		tracer:     o.tracerProvider.Tracer(tracerName),
		maxTenants: o.maxTenants,
		cache:      newLRU[cacheKey, introspection](o.cacheSize, o.now),
	}
	s.policies.Store(&map[string]*policyState{})
	s.metrics = newMetrics(s.snapshot)
	if o.registerer != nil {
		if err := s.metrics.register(o.registerer); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Register adds the service to a gRPC server.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	authv3.RegisterAuthorizationServer(g, s)
}

// SetPolicies replaces all policies at once, keyed by the ID routes name in
// their PolicyContextKey context extension. Unchanged policies keep their
// cache and breakers. An invalid policy is left out, so its routes are
// denied, and reported in the returned error; the others still apply.
func (s *Server) SetPolicies(policies map[string]Policy) error {
	s.setMu.Lock()
	defer s.setMu.Unlock()

	old := s.snapshot()
	next := make(map[string]*policyState, len(policies))
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(policies)) {
		p, err := policies[id].normalize()
		if err == nil && (id == "" || !utf8.ValidString(id)) {
			err = errors.New("the ID must be non-empty UTF-8")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("policy %q: %w", id, err))
			continue
		}
		if st, ok := old[id]; ok && st.policy.equal(p) {
			next[id] = st
			continue
		}
		s.lastGen++
		next[id] = newPolicyState(id, p, s.lastGen, s.maxTenants, s.now)
	}
	s.policies.Store(&next)

	// A check still running against a replaced state may re-create a series
	// after this; it is one stale series until the next change.
	for id, st := range old {
		if next[id] != st {
			s.metrics.forget(id)
		}
	}
	return errors.Join(errs...)
}

func (s *Server) snapshot() map[string]*policyState {
	return *s.policies.Load()
}
