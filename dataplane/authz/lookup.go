package authz

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// errBreakerOpen is a call the tenant's breaker refused.
var errBreakerOpen = errors.New("introspection circuit breaker is open")

// cacheKey identifies a token under one version of a policy. Tokens are only
// kept hashed.
type cacheKey struct {
	gen   uint64
	token [sha256.Size]byte
}

// lookup answers from the cache, or asks the endpoint once for all the
// concurrent checks of the same token and tenant.
func (s *Server) lookup(ctx context.Context, st *policyState, slot tenantSlot, token string) (introspection, error) {
	key := cacheKey{gen: st.gen, token: sha256.Sum256([]byte(token))}
	if in, ok := s.cache.get(key); ok {
		s.metrics.cache.WithLabelValues(st.id, "hit").Inc()
		return in, nil
	}
	s.metrics.cache.WithLabelValues(st.id, "miss").Inc()

	// The tenant is part of the flight so that each breaker only ever counts
	// its own tenant's calls.
	flight := string(binary.BigEndian.AppendUint64(key.token[:], key.gen)) + slot.label
	ch := s.flights.DoChan(flight, func() (any, error) {
		// A flight that ended just before this one began has filled the cache.
		if in, ok := s.cache.get(key); ok {
			return in, nil
		}
		// Detached from the first caller, whose cancellation must not fail
		// the others; the policy timeout bounds the call.
		return s.callEndpoint(context.WithoutCancel(ctx), st, slot, token, key)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return introspection{}, r.Err
		}
		return r.Val.(introspection), nil
	case <-ctx.Done():
		return introspection{}, fmt.Errorf("waiting for introspection: %w", ctx.Err())
	}
}

// callEndpoint introspects token if the tenant's breaker allows, feeds the
// outcome back to the breaker and caches the answer.
func (s *Server) callEndpoint(ctx context.Context, st *policyState, slot tenantSlot, token string, key cacheKey) (introspection, error) {
	log := s.log.WithValues("policy", st.id, "tenant", slot.label, "token", tokenID(key.token))
	t, ok := slot.breaker.allow()
	if !ok {
		return introspection{}, errBreakerOpen
	}
	if t.probe {
		log.V(1).Info("probing the introspection endpoint")
	}

	// Latency is wall time; the injected clock only drives expiry and breakers.
	start := time.Now()
	in, err := introspect(ctx, s.httpClient, &st.policy, token)
	s.metrics.latency.WithLabelValues(st.id, slot.label).Observe(time.Since(start).Seconds())
	s.metrics.introspections.WithLabelValues(st.id, slot.label, outcomeOf(in, err)).Inc()

	from, to := slot.breaker.done(t, err == nil)
	if from != to {
		log.Info("introspection circuit breaker changed state", "from", from.String(), "to", to.String())
	}
	if err != nil {
		var se *statusError
		if errors.As(err, &se) && se.rejected() {
			log.Error(err, "introspection endpoint refused our request: check the policy's client credentials and endpoint")
		} else {
			log.Error(err, "introspection failed")
		}
		return introspection{}, err
	}
	s.cache.put(key, in, cacheUntil(in, st.policy.CacheTTL, s.now()))
	return in, nil
}

func outcomeOf(in introspection, err error) string {
	var se *statusError
	switch {
	case errors.As(err, &se) && se.rejected():
		return outcomeRejected
	case err != nil:
		return outcomeError
	case in.Active:
		return outcomeActive
	default:
		return outcomeInactive
	}
}

// tokenID names a token in logs without revealing it.
func tokenID(hash [sha256.Size]byte) string {
	return "sha256:" + hex.EncodeToString(hash[:6])
}
