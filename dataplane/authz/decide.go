package authz

import (
	"slices"
	"time"
)

// negativeCacheTTL caps how long an inactive answer is reused: right after
// issuance a token can be unknown to some replicas of the authorization
// server, and a client retrying should not be locked out for a full TTL.
const negativeCacheTTL = 10 * time.Second

// verdict is the answer for a token the endpoint was asked about.
type verdict int

const (
	verdictAllow             verdict = iota
	verdictInvalidToken              // 401
	verdictInsufficientScope         // 403
)

// decision is a verdict and, for insufficient scope, the scopes missing.
type decision struct {
	verdict verdict
	missing []string
}

// decide judges an introspection answer against the required scopes. An
// active token whose exp has passed by our clock is refused: the endpoint's
// clock may lag ours, and the answer may have been cached until exp.
func decide(in introspection, required []string, now time.Time) decision {
	if !in.Active || (!in.Expiry.IsZero() && !now.Before(in.Expiry)) {
		return decision{verdict: verdictInvalidToken}
	}
	var missing []string
	for _, s := range required {
		if !slices.Contains(in.Scopes, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return decision{verdict: verdictInsufficientScope, missing: missing}
	}
	return decision{verdict: verdictAllow}
}

// cacheUntil is when a cached answer stops being reused: after ttl, never
// past the token's expiry, and soon for negative answers.
func cacheUntil(in introspection, ttl time.Duration, now time.Time) time.Time {
	if !in.Active {
		return now.Add(min(ttl, negativeCacheTTL))
	}
	until := now.Add(ttl)
	if !in.Expiry.IsZero() && in.Expiry.Before(until) {
		return in.Expiry
	}
	return until
}
