package twin

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTime is a settable physical clock.
type fakeTime struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeTime() *fakeTime { return &fakeTime{t: time.Unix(1732521600, 0)} }

func (f *fakeTime) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeTime) Add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

func TestStampCompare(t *testing.T) {
	cases := []struct {
		a, b Stamp
		want int
	}{
		{Stamp{1, 0, "a"}, Stamp{2, 0, "a"}, -1},
		{Stamp{2, 0, "a"}, Stamp{1, 9, "z"}, 1},
		{Stamp{2, 1, "a"}, Stamp{2, 2, "a"}, -1},
		{Stamp{2, 2, "hub"}, Stamp{2, 2, "ns/device"}, -1},
		{Stamp{2, 2, "hub"}, Stamp{2, 2, "hub"}, 0},
	}
	for _, c := range cases {
		if got := c.a.Compare(c.b); got != c.want {
			t.Errorf("%s.Compare(%s) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := c.b.Compare(c.a); got != -c.want {
			t.Errorf("%s.Compare(%s) = %d, want %d", c.b, c.a, got, -c.want)
		}
	}
	if !(Stamp{}).IsZero() || (Stamp{Logical: 1}).IsZero() {
		t.Error("IsZero wrong")
	}
}

func TestClockMonotonicWhenTimeGoesBackwards(t *testing.T) {
	ft := newFakeTime()
	c := NewClock("dev", ft.Now, 0)
	prev := c.Now()
	if prev.Wall != ft.Now().UnixNano() || prev.Logical != 0 || prev.Node != "dev" {
		t.Fatalf("first stamp %s does not track physical time", prev)
	}
	steps := []time.Duration{time.Second, -time.Hour, 0, 0, time.Millisecond, -time.Millisecond, 2 * time.Hour}
	for i, d := range steps {
		ft.Add(d)
		s := c.Now()
		if s.Compare(prev) <= 0 {
			t.Fatalf("step %d: stamp %s not greater than previous %s", i, s, prev)
		}
		prev = s
	}
	// After the clock went back an hour, then forward two, wall tracks physical time again.
	if prev.Wall != ft.Now().UnixNano() || prev.Logical != 0 {
		t.Fatalf("stamp %s did not catch up with physical time %d", prev, ft.Now().UnixNano())
	}
	if c.Last() != prev {
		t.Fatalf("Last() = %s, want %s", c.Last(), prev)
	}
}

func TestClockLogicalOverflow(t *testing.T) {
	ft := newFakeTime()
	c := NewClock("dev", ft.Now, 0)
	w := ft.Now().UnixNano()
	c.Restore(Stamp{Wall: w, Logical: ^uint32(0), Node: "zzz"})
	s := c.Now()
	if s.Wall != w+1 || s.Logical != 0 {
		t.Fatalf("overflow stamp %s, want wall %d logical 0", s, w+1)
	}
}

func TestClockConcurrentUnique(t *testing.T) {
	c := NewClock("dev", newFakeTime().Now, 0) // frozen time: all via logical counter
	var mu sync.Mutex
	seen := map[Stamp]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				s := c.Now()
				mu.Lock()
				if seen[s] {
					t.Errorf("duplicate stamp %s", s)
				}
				seen[s] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 4000 {
		t.Fatalf("got %d stamps, want 4000", len(seen))
	}
}

func TestClockObserve(t *testing.T) {
	ft := newFakeTime()
	c := NewClock("dev", ft.Now, time.Minute)
	before := c.Now()

	// Within skew: advances, next stamp beats the remote one.
	remote := Stamp{Wall: ft.Now().Add(30 * time.Second).UnixNano(), Logical: 7, Node: "hub"}
	if err := c.Observe(remote); err != nil {
		t.Fatalf("Observe within skew: %v", err)
	}
	if c.Last() != remote {
		t.Fatalf("Last() = %s, want %s", c.Last(), remote)
	}
	if s := c.Now(); s.Compare(remote) <= 0 || s.Wall != remote.Wall || s.Logical != 8 || s.Node != "dev" {
		t.Fatalf("Now() after Observe = %s, want %d.8@dev", s, remote.Wall)
	}

	// Observing an older stamp does not move the clock back.
	last := c.Last()
	if err := c.Observe(before); err != nil {
		t.Fatal(err)
	}
	if c.Last() != last {
		t.Fatalf("Observe(older) moved clock to %s", c.Last())
	}

	// Beyond skew: error wrapping ErrClockSkew, clock unchanged.
	far := Stamp{Wall: ft.Now().Add(time.Minute + time.Nanosecond).UnixNano(), Node: "evil"}
	err := c.Observe(far)
	if !errors.Is(err, ErrClockSkew) {
		t.Fatalf("Observe beyond skew: err = %v, want ErrClockSkew", err)
	}
	if !strings.Contains(err.Error(), "ahead") {
		t.Errorf("error not explanatory: %v", err)
	}
	if c.Last() != last {
		t.Fatalf("Observe beyond skew advanced clock to %s", c.Last())
	}
	// Exactly at the limit is accepted.
	if err := c.Observe(Stamp{Wall: ft.Now().Add(time.Minute).UnixNano(), Node: "hub"}); err != nil {
		t.Fatalf("Observe at limit: %v", err)
	}
}

func TestClockDefaultSkew(t *testing.T) {
	ft := newFakeTime()
	c := NewClock("dev", ft.Now, 0)
	if err := c.Observe(Stamp{Wall: ft.Now().Add(4 * time.Minute).UnixNano(), Node: "hub"}); err != nil {
		t.Fatalf("4m ahead rejected with default skew: %v", err)
	}
	if err := c.Observe(Stamp{Wall: ft.Now().Add(6 * time.Minute).UnixNano(), Node: "hub"}); !errors.Is(err, ErrClockSkew) {
		t.Fatalf("6m ahead: err = %v, want ErrClockSkew", err)
	}
}

func TestClockRestore(t *testing.T) {
	ft := newFakeTime()
	persisted := Stamp{Wall: ft.Now().Add(time.Hour).UnixNano(), Logical: 3, Node: "dev"}
	c := NewClock("dev", ft.Now, 0) // restarted with a clock one hour behind
	c.Restore(persisted)
	if s := c.Now(); s.Compare(persisted) <= 0 {
		t.Fatalf("after Restore, Now() = %s, not greater than %s", s, persisted)
	}
	// Restoring an older stamp does not move the clock back.
	last := c.Last()
	c.Restore(Stamp{Wall: 1, Node: "dev"})
	if c.Last() != last {
		t.Fatalf("Restore(older) moved clock to %s", c.Last())
	}
}

func TestStampStringRoundTrip(t *testing.T) {
	for _, s := range []Stamp{
		{Wall: 1732521600000000000, Logical: 3, Node: "hub"},
		{Wall: 1, Logical: 0, Node: "ns/device"},
		{Wall: 5, Logical: ^uint32(0), Node: "a@b.c"},
		{Wall: -7, Logical: 1, Node: "x"},
		{},
	} {
		str := s.String()
		got, err := ParseStamp(str)
		if err != nil {
			t.Fatalf("ParseStamp(%q): %v", str, err)
		}
		if got != s {
			t.Fatalf("ParseStamp(%q) = %#v, want %#v", str, got, s)
		}
	}
	if got := (Stamp{Wall: 1732521600000000000, Logical: 3, Node: "hub"}).String(); got != "1732521600000000000.3@hub" {
		t.Fatalf("String() = %q", got)
	}
}

func TestParseStampBad(t *testing.T) {
	for _, in := range []string{
		"", "hub", "12@hub", "12.3", ".3@hub", "12.@hub", "x.3@hub", "12.y@hub",
		"12.4294967296@hub", "99999999999999999999.0@hub", "+12.3@hub", "012.3@hub",
		"12.03@hub", "12.3@", "12.3@has space", "12.-3@hub",
	} {
		if s, err := ParseStamp(in); err == nil {
			t.Errorf("ParseStamp(%q) = %s, want error", in, s)
		} else if !strings.Contains(err.Error(), "parse stamp") {
			t.Errorf("ParseStamp(%q) error lacks context: %v", in, err)
		}
	}
}
