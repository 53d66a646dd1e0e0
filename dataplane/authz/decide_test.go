package authz

import (
	"slices"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	now := newFakeClock().Now()
	active := introspection{Active: true, Scopes: []string{"a", "b"}, Expiry: now.Add(time.Minute)}
	for name, tc := range map[string]struct {
		in       introspection
		required []string
		want     verdict
		missing  []string
	}{
		"active, nothing required": {in: active, want: verdictAllow},
		"active, scopes held":      {in: active, required: []string{"b", "a"}, want: verdictAllow},
		"no expiry":                {in: introspection{Active: true}, want: verdictAllow},
		"inactive":                 {in: introspection{Active: false, Scopes: []string{"a"}}, want: verdictInvalidToken},
		"expired by our clock":     {in: introspection{Active: true, Expiry: now}, want: verdictInvalidToken},
		"inactive beats scope":     {in: introspection{}, required: []string{"a"}, want: verdictInvalidToken},
		"scope missing": {in: active, required: []string{"a", "c", "d"}, want: verdictInsufficientScope,
			missing: []string{"c", "d"}},
		"scope is not a prefix match": {in: introspection{Active: true, Scopes: []string{"orders:read"}},
			required: []string{"orders"}, want: verdictInsufficientScope, missing: []string{"orders"}},
	} {
		d := decide(tc.in, tc.required, now)
		if d.verdict != tc.want || !slices.Equal(d.missing, tc.missing) {
			t.Errorf("%s: decide = %+v, want verdict %d missing %v", name, d, tc.want, tc.missing)
		}
	}
}

func TestCacheUntil(t *testing.T) {
	now := newFakeClock().Now()
	for name, tc := range map[string]struct {
		in   introspection
		ttl  time.Duration
		want time.Time
	}{
		"TTL first":                      {introspection{Active: true, Expiry: now.Add(time.Hour)}, time.Minute, now.Add(time.Minute)},
		"expiry first":                   {introspection{Active: true, Expiry: now.Add(5 * time.Second)}, time.Minute, now.Add(5 * time.Second)},
		"no expiry":                      {introspection{Active: true}, time.Minute, now.Add(time.Minute)},
		"negative, capped":               {introspection{Active: false}, time.Minute, now.Add(negativeCacheTTL)},
		"negative, shorter TTL":          {introspection{Active: false}, 3 * time.Second, now.Add(3 * time.Second)},
		"negative ignores a past expiry": {introspection{Active: false, Expiry: now.Add(-time.Hour)}, time.Minute, now.Add(negativeCacheTTL)},
	} {
		if got := cacheUntil(tc.in, tc.ttl, now); !got.Equal(tc.want) {
			t.Errorf("%s: cacheUntil = %v, want %v", name, got, tc.want)
		}
	}
}
