package twin

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "twin.db")
	st, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	return st, path
}

func reopen(t testing.TB, st *Store, path string) *Store {
	t.Helper()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStoreSaveLoad(t *testing.T) {
	st, path := openTemp(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("db file mode %v, want 0600", perm)
	}
	if s, last, err := st.Load(); err != nil || len(s) != 0 || !last.IsZero() {
		t.Fatalf("empty Load = %v %s %v", s, last, err)
	}

	c := NewClock("dev", newFakeTime().Now, 0)
	s := New()
	mustSet(t, s, c, "desired/a", `{"x":1}`)
	mustSet(t, s, c, "desired/b", `2`)
	if _, err := s.Delete(c, "desired/c"); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(s, c.Last()); err != nil {
		t.Fatal(err)
	}
	// Second save of only the changed entry.
	e := mustSet(t, s, c, "desired/b", `3`)
	if err := st.Save(State{"desired/b": e}, c.Last()); err != nil {
		t.Fatal(err)
	}
	c.Now() // clock moved past the last saved entry
	if err := st.Save(nil, c.Last()); err != nil {
		t.Fatal(err)
	}
	// A stale save (older entry, older clock) does not regress anything.
	stale := State{"desired/b": {Value: raw(`0`), Stamp: Stamp{Wall: 1, Node: "dev"}}}
	if err := st.Save(stale, Stamp{Wall: 1, Node: "dev"}); err != nil {
		t.Fatal(err)
	}

	st = reopen(t, st, path)
	defer st.Close()
	got, last, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("reloaded state\n got %v\nwant %v", got, s)
	}
	if last != c.Last() {
		t.Fatalf("reloaded clock %s, want %s", last, c.Last())
	}
	// A restarted clock with a physical clock that went back never reuses a stamp.
	c2 := NewClock("dev", func() time.Time { return time.Unix(0, 0) }, 0)
	c2.Restore(last)
	if n := c2.Now(); n.Compare(last) <= 0 {
		t.Fatalf("restored clock issued %s <= %s", n, last)
	}
}

func TestStoreSaveRejectsInvalid(t *testing.T) {
	st, _ := openTemp(t)
	defer st.Close()
	err := st.Save(State{"a//b": {Value: raw(`1`), Stamp: Stamp{Wall: 1, Node: "x"}}}, Stamp{})
	if err == nil || !strings.Contains(err.Error(), "empty segment") {
		t.Fatalf("Save(invalid) = %v", err)
	}
	if s, _, _ := st.Load(); len(s) != 0 {
		t.Fatal("invalid entry persisted")
	}
}

func TestStoreLockedByOtherHandle(t *testing.T) {
	st, path := openTemp(t)
	defer st.Close()
	start := time.Now()
	st2, err := OpenStore(path)
	elapsed := time.Since(start)
	if err == nil {
		st2.Close()
		t.Fatal("second OpenStore on an open database succeeded")
	}
	if !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), path) {
		t.Fatalf("unclear error: %v", err)
	}
	if elapsed < 800*time.Millisecond || elapsed > 3*time.Second {
		t.Fatalf("second OpenStore failed after %s, want about 1s", elapsed)
	}
}

func TestOutboxFIFOAndPersistence(t *testing.T) {
	st, path := openTemp(t)
	var seqs []uint64
	for i := 0; i < 5; i++ {
		seq, err := st.Enqueue(fmt.Sprintf("topic/%d", i), []byte(fmt.Sprintf("payload-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if len(seqs) > 0 && seq <= seqs[len(seqs)-1] {
			t.Fatalf("seq %d not increasing after %d", seq, seqs[len(seqs)-1])
		}
		seqs = append(seqs, seq)
	}
	if _, err := st.Enqueue("", []byte("x")); err == nil {
		t.Fatal("empty topic accepted")
	}
	// Empty payload is fine.
	seqEmpty, err := st.Enqueue("topic/empty", nil)
	if err != nil {
		t.Fatal(err)
	}

	p, err := st.Pending(2)
	if err != nil {
		t.Fatal(err)
	}
	want := []Pending{{seqs[0], "topic/0", []byte("payload-0")}, {seqs[1], "topic/1", []byte("payload-1")}}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("Pending(2) = %+v, want %+v", p, want)
	}
	if err := st.Ack(seqs[0]); err != nil {
		t.Fatal(err)
	}
	if err := st.Ack(seqs[2]); err != nil { // out of order ack
		t.Fatal(err)
	}
	if err := st.Ack(seqs[0]); err != nil { // double ack is harmless
		t.Fatal(err)
	}

	st = reopen(t, st, path)
	defer st.Close()
	p, err = st.Pending(0)
	if err != nil {
		t.Fatal(err)
	}
	var gotSeqs []uint64
	for _, x := range p {
		gotSeqs = append(gotSeqs, x.Seq)
	}
	if wantSeqs := []uint64{seqs[1], seqs[3], seqs[4], seqEmpty}; !reflect.DeepEqual(gotSeqs, wantSeqs) {
		t.Fatalf("after reopen Pending = %v, want %v", gotSeqs, wantSeqs)
	}
	if p[1].Topic != "topic/3" || string(p[1].Payload) != "payload-3" || p[3].Topic != "topic/empty" || len(p[3].Payload) != 0 {
		t.Fatalf("items corrupted after reopen: %+v", p)
	}
	// Sequence numbers keep increasing after reopen.
	seq, err := st.Enqueue("topic/new", []byte("n"))
	if err != nil || seq <= seqEmpty {
		t.Fatalf("Enqueue after reopen = %d, %v (want > %d)", seq, err, seqEmpty)
	}
}

func TestOutboxDropsOldest(t *testing.T) {
	old := maxOutbox
	maxOutbox = 5
	defer func() { maxOutbox = old }()

	st, path := openTemp(t)
	for i := 0; i < 8; i++ {
		if _, err := st.Enqueue("t", []byte{byte(i)}); err != nil {
			t.Fatalf("Enqueue %d: %v", i, err)
		}
	}
	if d := st.Dropped(); d != 3 {
		t.Fatalf("Dropped() = %d, want 3", d)
	}
	p, err := st.Pending(0)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for _, x := range p {
		got = append(got, x.Payload...)
	}
	if !reflect.DeepEqual(got, []byte{3, 4, 5, 6, 7}) {
		t.Fatalf("outbox holds %v, want the newest 5 [3 4 5 6 7]", got)
	}
	// Acking frees room: no further drops until full again.
	if err := st.Ack(p[0].Seq); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Enqueue("t", []byte{8}); err != nil {
		t.Fatal(err)
	}
	if d := st.Dropped(); d != 3 {
		t.Fatalf("Dropped() after ack+enqueue = %d, want 3", d)
	}
	// Count and drop counter survive a reopen.
	st = reopen(t, st, path)
	defer st.Close()
	if d := st.Dropped(); d != 3 {
		t.Fatalf("Dropped() after reopen = %d, want 3", d)
	}
	if _, err := st.Enqueue("t", []byte{9}); err != nil {
		t.Fatal(err)
	}
	p, _ = st.Pending(0)
	got = got[:0]
	for _, x := range p {
		got = append(got, x.Payload...)
	}
	if !reflect.DeepEqual(got, []byte{5, 6, 7, 8, 9}) || st.Dropped() != 4 {
		t.Fatalf("after reopen outbox holds %v (dropped %d), want [5 6 7 8 9] (4)", got, st.Dropped())
	}
}

func BenchmarkStoreSave(b *testing.B) {
	st, _ := openTemp(b)
	defer st.Close()
	c := NewClock("dev", nil, 0)
	s := New()
	for i := 0; i < 256; i++ {
		mustSet(b, s, c, fmt.Sprintf("reported/key-%03d", i), `{"value":42,"unit":"C"}`)
	}
	if err := st.Save(s, c.Last()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		changed := New()
		for j := 0; j < 10; j++ {
			k := fmt.Sprintf("reported/key-%03d", (i*10+j)%256)
			e, err := s.Set(c, k, raw(`{"value":43,"unit":"C"}`))
			if err != nil {
				b.Fatal(err)
			}
			changed[k] = e
		}
		if err := st.Save(changed, c.Last()); err != nil {
			b.Fatal(err)
		}
	}
}
