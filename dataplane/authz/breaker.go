package authz

import (
	"sync"
	"time"
)

// breakerState is the state of a circuit breaker. The values are those of
// the cairn_authz_breaker_state gauge.
type breakerState int

const (
	stateClosed   breakerState = 0
	stateHalfOpen breakerState = 1
	stateOpen     breakerState = 2
)

func (s breakerState) String() string {
	switch s {
	case stateClosed:
		return "closed"
	case stateHalfOpen:
		return "half-open"
	case stateOpen:
		return "open"
	default:
		return "unknown"
	}
}

// breaker is a consecutive-failure circuit breaker: closed until
// FailureThreshold calls in a row fail, then open for OpenDuration, then
// half-open, admitting up to HalfOpenProbes concurrent probes. A probe
// success closes it, a probe failure opens it again.
//
// It holds no I/O: callers ask allow before a call and report the outcome
// with done. Time comes from an injected clock.
type breaker struct {
	cfg BreakerConfig
	now func() time.Time

	mu    sync.Mutex
	state breakerState
	// gen changes on every transition, so that outcomes of calls admitted in
	// an earlier state (a slow call finishing after the breaker opened, a
	// second probe finishing after the first closed it) are ignored.
	gen      uint64
	failures int       // consecutive failures while closed
	openedAt time.Time // while open
	probes   int       // probes in flight while half-open
}

// ticket is one admitted call, to be handed back to done.
type ticket struct {
	gen   uint64
	probe bool
}

func newBreaker(cfg BreakerConfig, now func() time.Time) *breaker {
	return &breaker{cfg: cfg, now: now}
}

// allow admits a call, or refuses it while the breaker is open or all
// half-open probe slots are taken.
func (b *breaker) allow() (ticket, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == stateOpen && !b.now().Before(b.openedAt.Add(b.cfg.OpenDuration)) {
		b.transition(stateHalfOpen)
	}
	switch b.state {
	case stateClosed:
		return ticket{gen: b.gen}, true
	case stateHalfOpen:
		if b.probes >= b.cfg.HalfOpenProbes {
			return ticket{}, false
		}
		b.probes++
		return ticket{gen: b.gen, probe: true}, true
	default:
		return ticket{}, false
	}
}

// done records the outcome of an admitted call and returns the state before
// and after it.
func (b *breaker) done(t ticket, success bool) (from, to breakerState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	from = b.state
	if t.gen != b.gen {
		return from, from
	}
	switch b.state {
	case stateClosed:
		if success {
			b.failures = 0
			break
		}
		b.failures++
		if b.failures >= b.cfg.FailureThreshold {
			b.transition(stateOpen)
		}
	case stateHalfOpen:
		if success {
			b.transition(stateClosed)
		} else {
			b.transition(stateOpen)
		}
	case stateOpen:
		// Unreachable: no ticket is issued while open, and opening changes gen.
	}
	return from, b.state
}

// current is the state the next call would see: an open breaker whose open
// duration has passed reports half-open.
func (b *breaker) current() breakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == stateOpen && !b.now().Before(b.openedAt.Add(b.cfg.OpenDuration)) {
		return stateHalfOpen
	}
	return b.state
}

func (b *breaker) transition(to breakerState) {
	b.state = to
	b.gen++
	b.failures = 0
	b.probes = 0
	if to == stateOpen {
		b.openedAt = b.now()
	}
}
