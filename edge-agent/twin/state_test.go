package twin

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func mustSet(t testing.TB, s State, c *Clock, k, v string) Entry {
	t.Helper()
	e, err := s.Set(c, k, raw(v))
	if err != nil {
		t.Fatalf("Set(%q, %s): %v", k, v, err)
	}
	return e
}

func TestValidateKey(t *testing.T) {
	good := []string{"a", "desired/setpoint", "reported/temperature", "_x", "0", "a.b-c_d/e", strings.Repeat("k", 160)}
	for _, k := range good {
		if err := ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", k, err)
		}
	}
	bad := map[string]string{
		"":                       "must not be empty",
		"a//b":                   "must not contain an empty segment",
		"a/":                     "must not end with '/'",
		"/a":                     "must start with",
		".a":                     "must start with",
		"-a":                     "must start with",
		"a b":                    "not allowed",
		"a\x00":                  "not allowed",
		"é":                      "not allowed",
		strings.Repeat("k", 161): "longer than the limit",
	}
	for k, want := range bad {
		err := ValidateKey(k)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateKey(%q) = %v, want error containing %q", k, err, want)
		}
	}
	if err := ValidateKey("a//b"); err.Error() != `twin key "a//b": must not contain an empty segment` {
		t.Errorf("message = %q", err)
	}
}

func TestSetDeleteValues(t *testing.T) {
	ft := newFakeTime()
	c := NewClock("dev", ft.Now, 0)
	s := New()
	e := mustSet(t, s, c, "desired/setpoint", ` { "a" : [1, 2] } `)
	if string(e.Value) != `{"a":[1,2]}` {
		t.Fatalf("value not compacted: %s", e.Value)
	}
	mustSet(t, s, c, "desired/mode", `"eco"`)
	mustSet(t, s, c, "reported/temperature", `21.5`)
	mustSet(t, s, c, "desired/null", `null`)
	if _, err := s.Delete(c, "desired/mode"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(c, "desired/never-set"); err != nil {
		t.Fatal(err)
	}
	if e := s["desired/never-set"]; !e.Deleted || e.Value != nil || e.Stamp.IsZero() {
		t.Fatalf("tombstone for absent key = %+v", e)
	}
	got := s.Values("desired/")
	want := map[string]json.RawMessage{"setpoint": raw(`{"a":[1,2]}`), "null": raw(`null`)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Values = %s, want %s", fmtValues(got), fmtValues(want))
	}
	// Values returns copies.
	got["setpoint"][0] = 'X'
	if string(s["desired/setpoint"].Value) != `{"a":[1,2]}` {
		t.Fatal("Values aliases state memory")
	}
	// Resurrect.
	mustSet(t, s, c, "desired/mode", `"boost"`)
	if v := s.Values("desired/")["mode"]; string(v) != `"boost"` {
		t.Fatalf("resurrected value = %s", v)
	}
	// Stamps strictly increase even though physical time is frozen.
	if s["desired/mode"].Stamp.Compare(s["desired/never-set"].Stamp) <= 0 {
		t.Fatal("later write has smaller stamp")
	}
	if m := s.MaxStamp(); m != s["desired/mode"].Stamp {
		t.Fatalf("MaxStamp = %s, want %s", m, s["desired/mode"].Stamp)
	}
}

func fmtValues(m map[string]json.RawMessage) string {
	b, _ := json.Marshal(m)
	return string(b)
}

func TestSetRejects(t *testing.T) {
	c := NewClock("dev", newFakeTime().Now, 0)
	s := New()
	cases := map[string]struct {
		key, val, want string
	}{
		"bad key":   {"a//b", `1`, "empty segment"},
		"bad json":  {"a", `{`, "not valid JSON"},
		"empty":     {"a", ``, "value is missing"},
		"two vals":  {"a", `1 2`, "not valid JSON"},
		"too large": {"a", `"` + strings.Repeat("x", MaxValueBytes) + `"`, "larger than the limit"},
	}
	for name, tc := range cases {
		if _, err := s.Set(c, tc.key, raw(tc.val)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
	// Exactly MaxValueBytes after compaction is accepted, even if the input is larger.
	v := `"` + strings.Repeat("x", MaxValueBytes-2) + `"`
	if _, err := s.Set(c, "a", raw("   "+v+"   ")); err != nil {
		t.Errorf("value of exactly MaxValueBytes: %v", err)
	}
	if len(s) != 1 {
		t.Fatalf("rejected writes changed the state: %d keys", len(s))
	}
	if _, err := s.Set(NewClock("", nil, 0), "b", raw(`1`)); err == nil {
		t.Error("Set with empty node id accepted")
	}
	var nilState State
	if _, err := nilState.Set(c, "a", raw(`1`)); err == nil {
		t.Error("Set on nil State did not fail")
	}
}

func TestMaxKeys(t *testing.T) {
	c := NewClock("dev", newFakeTime().Now, 0)
	s := New()
	for i := 0; i < MaxKeys-1; i++ {
		mustSet(t, s, c, fmt.Sprintf("k%d", i), `1`)
	}
	if _, err := s.Delete(c, "tomb"); err != nil { // tombstones count too
		t.Fatal(err)
	}
	if _, err := s.Set(c, "one-too-many", raw(`1`)); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("Set beyond MaxKeys: err = %v", err)
	}
	if _, err := s.Delete(c, "one-too-many"); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("Delete beyond MaxKeys: err = %v", err)
	}
	mustSet(t, s, c, "k0", `2`) // existing keys can still be updated
	mustSet(t, s, c, "tomb", `2`)

	// MergeChecked refuses a remote that would exceed the limit.
	remote := New()
	mustSet(t, remote, NewClock("hub", newFakeTime().Now, 0), "new-key", `1`)
	before := s.Clone()
	if _, err := s.MergeChecked(remote, c); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("MergeChecked beyond MaxKeys: err = %v", err)
	}
	if !reflect.DeepEqual(s, before) {
		t.Fatal("state changed after rejected merge")
	}
}

// A local write must beat whatever the replica has already seen for the key,
// even when it was merged unchecked and carries a stamp ahead of the local clock.
func TestSetAfterObservingAlwaysWins(t *testing.T) {
	hubTime, devTime := newFakeTime(), newFakeTime()
	hubTime.Add(3 * time.Minute) // hub clock far ahead of the device
	hub, dev := NewClock("hub", hubTime.Now, 0), NewClock("dev", devTime.Now, 0)
	hs, ds := New(), New()
	mustSet(t, hs, hub, "desired/x", `"hub"`)
	if _, err := ds.MergeChecked(hs, dev); err != nil {
		t.Fatal(err)
	}
	mustSet(t, ds, dev, "desired/x", `"dev-after-seeing-hub"`)
	// Plain Merge (no Observe) followed by a local write must win as well,
	// even though the device clock never observed this newer hub stamp.
	hubTime.Add(time.Minute)
	mustSet(t, hs, hub, "desired/y", `"hub"`)
	ds.Merge(hs)
	mustSet(t, ds, dev, "desired/y", `"dev-after-seeing-hub"`)

	hs.Merge(ds)
	for _, st := range []State{hs, ds} {
		for _, k := range []string{"desired/x", "desired/y"} {
			if v := string(st[k].Value); v != `"dev-after-seeing-hub"` {
				t.Fatalf("%s = %s: causally later write lost", k, v)
			}
		}
	}
}

func TestConcurrentEditSameKey(t *testing.T) {
	type side struct {
		node string
		skew time.Duration
		op   string // value JSON, or "" for delete
	}
	cases := []struct {
		name     string
		hub, dev side
		winner   string // node whose write must win
	}{
		{"later wall wins (hub)", side{"hub", time.Second, `1`}, side{"ns/device", 0, `2`}, "hub"},
		{"later wall wins (device)", side{"hub", 0, `1`}, side{"ns/device", time.Millisecond, `2`}, "ns/device"},
		{"equal time: node id tie-break", side{"hub", 0, `1`}, side{"ns/device", 0, `2`}, "ns/device"},
		{"later delete beats set", side{"hub", 0, `1`}, side{"ns/device", time.Second, ""}, "ns/device"},
		{"later set beats delete", side{"hub", time.Second, `1`}, side{"ns/device", 0, ""}, "hub"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, hubFirst := range []bool{true, false} {
				base := newFakeTime()
				mk := func(sd side) (State, *Clock, Entry) {
					ft := &fakeTime{t: base.Now().Add(sd.skew)}
					c := NewClock(sd.node, ft.Now, 0)
					s := New()
					// Common history: both saw the same initial value.
					s["desired/setpoint"] = Entry{Value: raw(`0`), Stamp: Stamp{Wall: 1, Node: "init"}}
					var e Entry
					var err error
					if sd.op == "" {
						e, err = s.Delete(c, "desired/setpoint")
					} else {
						e, err = s.Set(c, "desired/setpoint", raw(sd.op))
					}
					if err != nil {
						t.Fatal(err)
					}
					return s, c, e
				}
				hs, hc, he := mk(tc.hub)
				ds, dc, de := mk(tc.dev)
				want := he
				if tc.winner == "ns/device" {
					want = de
				}
				// Exchange full states, in either order.
				hsSnap, dsSnap := hs.Clone(), ds.Clone()
				var err1, err2 error
				if hubFirst {
					_, err1 = hs.MergeChecked(dsSnap, hc)
					_, err2 = ds.MergeChecked(hs.Clone(), dc)
				} else {
					_, err1 = ds.MergeChecked(hsSnap, dc)
					_, err2 = hs.MergeChecked(ds.Clone(), hc)
				}
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				for name, st := range map[string]State{"hub": hs, "device": ds} {
					if got := st["desired/setpoint"]; !reflect.DeepEqual(got, want) {
						t.Fatalf("hubFirst=%v: %s holds %+v, want %s's write %+v", hubFirst, name, got, tc.winner, want)
					}
				}
			}
		})
	}
}

func TestMergeIdenticalStampsDeterministic(t *testing.T) {
	st := Stamp{Wall: 5, Node: "dev"}
	a := State{"k": {Value: raw(`1`), Stamp: st}}
	b := State{"k": {Value: raw(`2`), Stamp: st}}
	d := State{"k": {Deleted: true, Stamp: st}}
	ab, ba := a.Clone(), b.Clone()
	ab.Merge(b)
	ba.Merge(a)
	if !reflect.DeepEqual(ab, ba) || string(ab["k"].Value) != `2` {
		t.Fatalf("identical stamps: a+b=%v b+a=%v", ab, ba)
	}
	ad, da := a.Clone(), d.Clone()
	ad.Merge(d)
	da.Merge(a)
	if !reflect.DeepEqual(ad, da) || !ad["k"].Deleted {
		t.Fatalf("identical stamps with tombstone: %v %v", ad, da)
	}
}

func TestMergeChangedAndCopies(t *testing.T) {
	c1, c2 := NewClock("a", newFakeTime().Now, 0), NewClock("b", newFakeTime().Now, 0)
	s1, s2 := New(), New()
	mustSet(t, s1, c1, "z", `1`)
	mustSet(t, s1, c1, "m", `1`)
	mustSet(t, s2, c2, "a", `2`)
	mustSet(t, s2, c2, "m", `2`) // equal wall, equal logical: "b" > "a" wins
	changed := s1.Merge(s2)
	if !reflect.DeepEqual(changed, []string{"a", "m"}) {
		t.Fatalf("changed = %v, want [a m]", changed)
	}
	if again := s1.Merge(s2); len(again) != 0 {
		t.Fatalf("second merge changed %v, want nothing (idempotent)", again)
	}
	s2["a"].Value[0] = '9'
	if string(s1["a"].Value) != `2` {
		t.Fatal("Merge aliases remote memory")
	}
	cl := s1.Clone()
	cl["z"].Value[0] = '9'
	if string(s1["z"].Value) != `1` {
		t.Fatal("Clone aliases memory")
	}
}

func TestSince(t *testing.T) {
	c := NewClock("dev", newFakeTime().Now, 0)
	s := New()
	mustSet(t, s, c, "a", `1`)
	mark := mustSet(t, s, c, "b", `1`).Stamp
	mustSet(t, s, c, "c", `1`)
	if _, err := s.Delete(c, "a"); err != nil {
		t.Fatal(err)
	}
	d := s.Since(mark)
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range d {
			if !yield(k) {
				return
			}
		}
	})
	if !reflect.DeepEqual(keys, []string{"a", "c"}) || !d["a"].Deleted {
		t.Fatalf("Since = %v", d)
	}
	if len(s.Since(Stamp{})) != 3 {
		t.Fatal("Since(zero) must return everything")
	}
	if len(s.Since(s.MaxStamp())) != 0 {
		t.Fatal("Since(MaxStamp) must be empty")
	}
}

func TestMergeCheckedRejects(t *testing.T) {
	ft := newFakeTime()
	c := NewClock("dev", ft.Now, time.Minute)
	okStamp := Stamp{Wall: ft.Now().UnixNano(), Node: "hub"}
	good := Entry{Value: raw(`1`), Stamp: okStamp}
	cases := map[string]struct {
		key  string
		e    Entry
		want string
	}{
		"invalid key":     {"a//b", good, "empty segment"},
		"oversized value": {"k", Entry{Value: raw(`"` + strings.Repeat("x", MaxValueBytes) + `"`), Stamp: okStamp}, "larger than the limit"},
		"bad json":        {"k", Entry{Value: raw(`{"a":`), Stamp: okStamp}, "not valid JSON"},
		"missing value":   {"k", Entry{Stamp: okStamp}, "value is missing"},
		"tombstone value": {"k", Entry{Value: raw(`1`), Deleted: true, Stamp: okStamp}, "tombstone must not carry a value"},
		"zero stamp":      {"k", Entry{Value: raw(`1`)}, "no stamp"},
		"empty node":      {"k", Entry{Value: raw(`1`), Stamp: Stamp{Wall: 5}}, "node id must not be empty"},
		"skewed stamp":    {"k", Entry{Value: raw(`1`), Stamp: Stamp{Wall: ft.Now().Add(time.Hour).UnixNano(), Node: "hub"}}, "too far ahead"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := New()
			mustSet(t, s, c, "existing", `"x"`)
			before, lastBefore := s.Clone(), c.Last()
			// The invalid entry comes with valid ones that must not be applied either.
			remote := State{"aaa": good, "zzz": good, "existing": {Value: raw(`"y"`), Stamp: Stamp{Wall: okStamp.Wall + 1, Node: "hub"}}}
			remote[tc.key] = tc.e
			changed, err := s.MergeChecked(remote, c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
			if name == "skewed stamp" && !errors.Is(err, ErrClockSkew) {
				t.Fatalf("err %v does not wrap ErrClockSkew", err)
			}
			if changed != nil || !reflect.DeepEqual(s, before) {
				t.Fatalf("state changed after rejected merge: %v", s)
			}
			if c.Last() != lastBefore {
				t.Fatalf("clock advanced after rejected merge: %s", c.Last())
			}
		})
	}
	// And the same remote without the bad entry is accepted and observed.
	s := New()
	remote := State{"aaa": good}
	if _, err := s.MergeChecked(remote, c); err != nil {
		t.Fatal(err)
	}
	if c.Last().Compare(okStamp) < 0 {
		t.Fatal("MergeChecked did not observe remote stamp")
	}
}

// replica is one twin participant in the randomized convergence test.
type replica struct {
	s  State
	c  *Clock
	ft *fakeTime
}

func TestMergeConvergenceProperty(t *testing.T) {
	iterations := 300
	if testing.Short() {
		iterations = 50
	}
	multiWriter, lastIssuedLost := 0, 0 // sanity: the test does exercise conflicts
	for it := 0; it < iterations; it++ {
		seed := int64(it + 1)
		rng := rand.New(rand.NewSource(seed))
		base := newFakeTime()
		skews := []time.Duration{0, 2 * time.Minute, -90 * time.Second} // within DefaultMaxSkew pairwise
		reps := make([]*replica, 3)
		for i := range reps {
			ft := &fakeTime{t: base.Now().Add(skews[i])}
			reps[i] = &replica{s: New(), c: NewClock(fmt.Sprintf("node-%d", i), ft.Now, 0), ft: ft}
		}
		keys := []string{"desired/a", "desired/b", "reported/c", "d", "e/f"}
		written := map[string][]Entry{} // every write ever made, per key

		for step := 0; step < 200; step++ {
			// Physical clocks drift: mostly forward, sometimes backwards, sometimes frozen.
			for _, r := range reps {
				switch rng.Intn(4) {
				case 0:
					r.ft.Add(-time.Duration(rng.Intn(1000)) * time.Microsecond)
				case 1:
				default:
					r.ft.Add(time.Duration(rng.Intn(2000)) * time.Microsecond)
				}
			}
			r := reps[rng.Intn(3)]
			switch op := rng.Intn(10); {
			case op < 4:
				k := keys[rng.Intn(len(keys))]
				e, err := r.s.Set(r.c, k, raw(fmt.Sprintf(`{"v":%d}`, rng.Intn(1000))))
				if err != nil {
					t.Fatalf("seed %d: Set: %v", seed, err)
				}
				written[k] = append(written[k], e)
			case op < 5:
				k := keys[rng.Intn(len(keys))]
				e, err := r.s.Delete(r.c, k)
				if err != nil {
					t.Fatalf("seed %d: Delete: %v", seed, err)
				}
				written[k] = append(written[k], e)
			default:
				// Send a random subset of one replica's state to another.
				src, dst := reps[rng.Intn(3)], reps[rng.Intn(3)]
				sub := New()
				for k, e := range src.s {
					if rng.Intn(2) == 0 {
						sub[k] = e.clone()
					}
				}
				if rng.Intn(2) == 0 {
					if _, err := dst.s.MergeChecked(sub, dst.c); err != nil {
						t.Fatalf("seed %d: MergeChecked: %v", seed, err)
					}
				} else {
					dst.s.Merge(sub)
				}
			}
		}
		// Final all-to-all exchange, in a random order.
		order := rng.Perm(9)
		for round := 0; round < 2; round++ {
			for _, p := range order {
				src, dst := reps[p/3], reps[p%3]
				if _, err := dst.s.MergeChecked(src.s.Clone(), dst.c); err != nil {
					t.Fatalf("seed %d: final MergeChecked: %v", seed, err)
				}
			}
		}
		for i := 1; i < 3; i++ {
			if !reflect.DeepEqual(reps[0].s, reps[i].s) {
				t.Fatalf("seed %d: replica 0 and %d diverged:\n%v\n%v", seed, i, reps[0].s, reps[i].s)
			}
		}
		// Zero lost updates: per key the winner is the max-stamp write ever made.
		if len(reps[0].s) != len(written) {
			t.Fatalf("seed %d: %d keys converged, %d written", seed, len(reps[0].s), len(written))
		}
		for k, ws := range written {
			best := ws[0]
			for _, w := range ws[1:] {
				if w.Stamp.Compare(best.Stamp) == 0 {
					t.Fatalf("seed %d: two writes to %q share stamp %s", seed, k, w.Stamp)
				}
				if w.Stamp.Compare(best.Stamp) > 0 {
					best = w
				}
			}
			if got := reps[0].s[k]; !reflect.DeepEqual(got, best) {
				t.Fatalf("seed %d: key %q converged to %+v, want max-stamp write %+v", seed, k, got, best)
			}
			nodes := map[string]bool{}
			for _, w := range ws {
				nodes[w.Stamp.Node] = true
			}
			if len(nodes) > 1 {
				multiWriter++
			}
			if !reflect.DeepEqual(ws[len(ws)-1], best) {
				lastIssuedLost++ // a skewed clock made an earlier-issued write win
			}
		}
	}
	if multiWriter == 0 || lastIssuedLost == 0 {
		t.Fatalf("property test exercised no conflicts: multiWriter=%d lastIssuedLost=%d", multiWriter, lastIssuedLost)
	}
	t.Logf("keys written by several nodes: %d; keys where the last issued write lost to a skewed clock: %d", multiWriter, lastIssuedLost)
}

// randomState builds a random state over a small key space with entries drawn
// from a shared pool, so that different states conflict.
func randomState(rng *rand.Rand, pool []Entry) State {
	s := New()
	keys := []string{"a", "b", "c", "d"}
	for _, k := range keys {
		if rng.Intn(3) > 0 {
			s[k] = pool[rng.Intn(len(pool))]
		}
	}
	return s
}

func TestMergeLaws(t *testing.T) {
	rng := rand.New(rand.NewSource(42))
	var pool []Entry
	for i := 0; i < 12; i++ {
		st := Stamp{Wall: int64(rng.Intn(3)), Logical: uint32(rng.Intn(2)), Node: []string{"hub", "dev"}[rng.Intn(2)]}
		if rng.Intn(4) == 0 {
			pool = append(pool, Entry{Deleted: true, Stamp: st})
		} else {
			pool = append(pool, Entry{Value: raw(fmt.Sprint(rng.Intn(3))), Stamp: st}) // identical stamps possible
		}
	}
	merge := func(a, b State) State { r := a.Clone(); r.Merge(b); return r }
	for i := 0; i < 2000; i++ {
		a, b, c := randomState(rng, pool), randomState(rng, pool), randomState(rng, pool)
		if !reflect.DeepEqual(merge(a, a), a) {
			t.Fatalf("not idempotent: %v", a)
		}
		if ab, ba := merge(a, b), merge(b, a); !reflect.DeepEqual(ab, ba) {
			t.Fatalf("not commutative:\na=%v\nb=%v\nab=%v\nba=%v", a, b, ab, ba)
		}
		if l, r := merge(merge(a, b), c), merge(a, merge(b, c)); !reflect.DeepEqual(l, r) {
			t.Fatalf("not associative: %v vs %v", l, r)
		}
	}
}

func BenchmarkMerge(b *testing.B) {
	ft := newFakeTime()
	c1, c2 := NewClock("hub", ft.Now, 0), NewClock("dev", ft.Now, 0)
	local, remote := New(), New()
	for i := 0; i < 256; i++ {
		k := fmt.Sprintf("desired/key-%03d", i)
		mustSet(b, local, c1, k, `{"value":42,"unit":"C"}`)
		if i%2 == 0 {
			ft.Add(time.Microsecond) // the remote wins some keys
		}
		mustSet(b, remote, c2, k, `{"value":43,"unit":"C"}`)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := local.Clone()
		s.Merge(remote)
	}
}
