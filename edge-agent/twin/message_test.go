package twin

import (
	"reflect"
	"strings"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	c := NewClock("ns/device", newFakeTime().Now, 0)
	s := New()
	mustSet(t, s, c, "reported/temperature", `21.5`)
	mustSet(t, s, c, "reported/null", `null`)
	if _, err := s.Delete(c, "desired/old"); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{KindFull, KindDelta} {
		m := Message{Kind: kind, From: "ns/device", Entries: s}
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeMessage(b, len(b))
		if err != nil {
			t.Fatalf("DecodeMessage(%s): %v", b, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip:\n got %+v\nwant %+v\nwire %s", got, m, b)
		}
		if strings.Contains(string(b), `"d":false`) || strings.Count(string(b), `"v":`) != 2 {
			t.Fatalf("unexpected wire format: %s", b)
		}
		// Decoded entries pass network validation.
		if _, err := New().MergeChecked(got.Entries, NewClock("hub", newFakeTime().Now, 0)); err != nil {
			t.Fatalf("decoded entries rejected: %v", err)
		}
	}
	// Missing entries decode as an empty, usable State.
	m, err := DecodeMessage([]byte(`{"kind":"full","from":"hub"}`), 1024)
	if err != nil || m.Entries == nil || len(m.Entries) != 0 {
		t.Fatalf("empty full message: %+v, %v", m, err)
	}
	if _, err := m.Entries.Set(c, "a", raw(`1`)); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeMessageErrors(t *testing.T) {
	cases := map[string]struct {
		in   string
		max  int
		want string
	}{
		"too large":     {`{"kind":"full","from":"hub","entries":{}}`, 10, "exceeds the limit of 10"},
		"bad max":       {`{}`, 0, "maxBytes must be positive"},
		"not json":      {`hello`, 100, "invalid JSON"},
		"truncated":     {`{"kind":"full"`, 100, "invalid JSON"},
		"trailing":      {`{"kind":"full","from":"hub"} {}`, 100, "trailing data"},
		"unknown kind":  {`{"kind":"patch","from":"hub"}`, 100, `unknown kind "patch"`},
		"missing kind":  {`{"from":"hub"}`, 100, `unknown kind ""`},
		"missing from":  {`{"kind":"delta"}`, 100, `"from": node id must not be empty`},
		"wrong type":    {`{"kind":"delta","from":"hub","entries":[]}`, 100, "invalid JSON"},
		"bad entry":     {`{"kind":"delta","from":"hub","entries":{"a":{"s":"x"}}}`, 100, "invalid JSON"},
		"empty":         {``, 100, "invalid JSON"},
		"json null":     {`null`, 100, "unknown kind"},
		"array message": {`[1]`, 100, "invalid JSON"},
	}
	for name, tc := range cases {
		_, err := DecodeMessage([]byte(tc.in), tc.max)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "twin: decode message: ") {
			t.Errorf("%s: err = %v, want containing %q", name, err, tc.want)
		}
	}
}

func TestEncodeRejectsBadMessage(t *testing.T) {
	if _, err := (Message{Kind: "x", From: "hub"}).Encode(); err == nil {
		t.Error("Encode accepted unknown kind")
	}
	if _, err := (Message{Kind: KindFull}).Encode(); err == nil {
		t.Error("Encode accepted empty from")
	}
	b, err := (Message{Kind: KindFull, From: "hub"}).Encode()
	if err != nil || string(b) != `{"kind":"full","from":"hub","entries":{}}` {
		t.Errorf("Encode(empty) = %s, %v", b, err)
	}
}
