package authz

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTestBreaker(threshold, probes int) (*breaker, *fakeClock) {
	clock := newFakeClock()
	return newBreaker(BreakerConfig{FailureThreshold: threshold, OpenDuration: 30 * time.Second, HalfOpenProbes: probes}, clock.Now), clock
}

// mustAllow admits a call or fails the test.
func mustAllow(t *testing.T, b *breaker) ticket {
	t.Helper()
	tk, ok := b.allow()
	if !ok {
		t.Fatalf("call refused in state %s", b.current())
	}
	return tk
}

func mustRefuse(t *testing.T, b *breaker) {
	t.Helper()
	if _, ok := b.allow(); ok {
		t.Fatalf("call admitted in state %s", b.current())
	}
}

func wantState(t *testing.T, b *breaker, want breakerState) {
	t.Helper()
	if got := b.current(); got != want {
		t.Fatalf("state = %s, want %s", got, want)
	}
}

// fail runs n failing calls.
func fail(t *testing.T, b *breaker, n int) {
	t.Helper()
	for range n {
		b.done(mustAllow(t, b), false)
	}
}

// open drives a fresh breaker to open.
func open(t *testing.T, b *breaker) {
	t.Helper()
	fail(t, b, b.cfg.FailureThreshold)
	wantState(t, b, stateOpen)
}

func TestBreakerClosedOpensAfterThresholdConsecutiveFailures(t *testing.T) {
	b, _ := newTestBreaker(3, 1)
	wantState(t, b, stateClosed)
	fail(t, b, 2)
	wantState(t, b, stateClosed)
	tk := mustAllow(t, b)
	if from, to := b.done(tk, false); from != stateClosed || to != stateOpen {
		t.Fatalf("third failure: %s -> %s, want closed -> open", from, to)
	}
	mustRefuse(t, b)
}

func TestBreakerClosedSuccessResetsTheFailureCount(t *testing.T) {
	b, _ := newTestBreaker(3, 1)
	fail(t, b, 2)
	if from, to := b.done(mustAllow(t, b), true); from != stateClosed || to != stateClosed {
		t.Fatalf("success: %s -> %s, want closed -> closed", from, to)
	}
	fail(t, b, 2)
	wantState(t, b, stateClosed)
	fail(t, b, 1)
	wantState(t, b, stateOpen)
}

func TestBreakerThresholdOfOne(t *testing.T) {
	b, _ := newTestBreaker(1, 1)
	fail(t, b, 1)
	wantState(t, b, stateOpen)
}

func TestBreakerStaysOpenUntilTheOpenDurationHasPassed(t *testing.T) {
	b, clock := newTestBreaker(2, 1)
	open(t, b)
	clock.Advance(30*time.Second - time.Nanosecond)
	wantState(t, b, stateOpen)
	mustRefuse(t, b)

	clock.Advance(time.Nanosecond)
	// The state reads half-open as soon as the duration has passed, before
	// any call arrives.
	wantState(t, b, stateHalfOpen)
	if tk := mustAllow(t, b); !tk.probe {
		t.Fatal("the first call after the open duration is not a probe")
	}
}

func TestBreakerHalfOpenAdmitsAtMostHalfOpenProbes(t *testing.T) {
	b, clock := newTestBreaker(1, 2)
	open(t, b)
	clock.Advance(30 * time.Second)
	first, second := mustAllow(t, b), mustAllow(t, b)
	if !first.probe || !second.probe {
		t.Fatal("half-open calls are not probes")
	}
	mustRefuse(t, b)
	wantState(t, b, stateHalfOpen)
}

func TestBreakerHalfOpenProbeSuccessCloses(t *testing.T) {
	b, clock := newTestBreaker(1, 2)
	open(t, b)
	clock.Advance(30 * time.Second)
	first, second := mustAllow(t, b), mustAllow(t, b)
	if from, to := b.done(first, true); from != stateHalfOpen || to != stateClosed {
		t.Fatalf("probe success: %s -> %s, want half-open -> closed", from, to)
	}
	// The other probe belongs to the half-open period that ended: its
	// failure must not count, or a threshold of 1 would reopen the breaker.
	if from, to := b.done(second, false); from != stateClosed || to != stateClosed {
		t.Fatalf("late probe failure: %s -> %s, want closed -> closed", from, to)
	}
	tk := mustAllow(t, b)
	if tk.probe {
		t.Fatal("a call after closing is marked as a probe")
	}
}

func TestBreakerHalfOpenProbeFailureReopens(t *testing.T) {
	b, clock := newTestBreaker(1, 2)
	open(t, b)
	clock.Advance(45 * time.Second)
	first, second := mustAllow(t, b), mustAllow(t, b)
	if from, to := b.done(first, false); from != stateHalfOpen || to != stateOpen {
		t.Fatalf("probe failure: %s -> %s, want half-open -> open", from, to)
	}
	// The late success of the other probe does not close it either.
	if _, to := b.done(second, true); to != stateOpen {
		t.Fatalf("late probe success: state %s, want open", to)
	}
	// The open duration restarts from the probe failure.
	clock.Advance(30*time.Second - time.Nanosecond)
	mustRefuse(t, b)
	clock.Advance(time.Nanosecond)
	mustAllow(t, b)
}

func TestBreakerIgnoresOutcomesOfCallsAdmittedBeforeItOpened(t *testing.T) {
	b, clock := newTestBreaker(2, 1)
	slow := mustAllow(t, b)
	open(t, b)
	if _, to := b.done(slow, true); to != stateOpen {
		t.Fatalf("a success admitted while closed changed an open breaker to %s", to)
	}
	clock.Advance(30 * time.Second)
	probe := mustAllow(t, b)
	// Nor does it count as the probe's outcome, or free a probe slot.
	if _, to := b.done(slow, true); to != stateHalfOpen {
		t.Fatalf("a success admitted while closed changed a half-open breaker to %s", to)
	}
	mustRefuse(t, b)
	b.done(probe, true)
	wantState(t, b, stateClosed)
}

func TestBreakerConcurrentHalfOpenAdmitsExactlyTheProbeLimit(t *testing.T) {
	b, clock := newTestBreaker(1, 3)
	open(t, b)
	clock.Advance(30 * time.Second)

	var admitted atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			<-start
			if _, ok := b.allow(); ok {
				admitted.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := admitted.Load(); got != 3 {
		t.Fatalf("admitted %d concurrent probes, want 3", got)
	}
}

func TestBreakerConcurrentFailuresOpenIt(t *testing.T) {
	b, _ := newTestBreaker(10, 1)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if tk, ok := b.allow(); ok {
				b.done(tk, false)
			}
		})
	}
	wg.Wait()
	wantState(t, b, stateOpen)
}

func TestBreakerStateNames(t *testing.T) {
	for state, want := range map[breakerState]string{stateClosed: "closed", stateHalfOpen: "half-open", stateOpen: "open", 7: "unknown"} {
		if got := state.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(state), got, want)
		}
	}
}
