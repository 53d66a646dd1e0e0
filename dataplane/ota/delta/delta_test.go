package delta

import (
	"bytes"
	"errors"
	"math/rand"
	"strings"
	"testing"
)

func roundTrip(t *testing.T, old, new []byte) []byte {
	t.Helper()
	d, err := Create(old, new)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	got, err := Apply(old, d)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !bytes.Equal(got, new) {
		t.Fatalf("Apply result differs from new (len %d vs %d)", len(got), len(new))
	}
	var buf bytes.Buffer
	if err := ApplyTo(&buf, old, bytes.NewReader(d)); err != nil {
		t.Fatalf("ApplyTo: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), new) {
		t.Fatalf("ApplyTo result differs from new")
	}
	h, err := ReadHeader(d)
	if err != nil {
		t.Fatalf("ReadHeader: %v", err)
	}
	if h.Format != Format || h.NewSize != int64(len(new)) {
		t.Fatalf("header = %+v", h)
	}
	return d
}

func TestRoundTrip(t *testing.T) {
	const size = 1 << 20
	for _, tc := range []struct {
		name string
		gen  func(*rand.Rand, int) []byte
	}{{"random", randomImage}, {"firmware", firmwareImage}} {
		for _, frac := range []float64{0.01, 0.10} {
			r := rand.New(rand.NewSource(int64(frac * 1000)))
			old := tc.gen(r, size)
			new := mutate(r, old, frac)
			if bytes.Equal(old, new) {
				t.Fatal("mutate did not change anything")
			}
			d := roundTrip(t, old, new)
			pct := 100 * float64(len(d)) / float64(len(new))
			t.Logf("%s %.0f%% change: delta %d bytes = %.2f%% of %d", tc.name, frac*100, len(d), pct, len(new))
			// The target: a 1% change costs ≤ 10% of the image.
			// With random images a 1% change should cost ~1%; allow 5%.
			if frac == 0.01 && pct > 5 {
				t.Errorf("1%% change: delta is %.2f%% of the image, want ≤ 5%% (target 10%%)", pct)
			}
			if frac == 0.10 && tc.name == "random" && pct > 20 {
				t.Errorf("10%% change: delta is %.2f%% of the image, want ≤ 20%%", pct)
			}
		}
	}
}

func TestEdgeCases(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	img := randomImage(r, 300<<10)
	t.Run("empty old", func(t *testing.T) { roundTrip(t, nil, img) })
	t.Run("empty new", func(t *testing.T) { roundTrip(t, img, nil) })
	t.Run("both empty", func(t *testing.T) { roundTrip(t, nil, nil) })
	t.Run("identical", func(t *testing.T) {
		d := roundTrip(t, img, img)
		if len(d) > 1024 {
			t.Errorf("identical images: delta is %d bytes, want ≤ 1024", len(d))
		}
	})
	t.Run("new smaller", func(t *testing.T) {
		d := roundTrip(t, img, img[1000:200<<10])
		if len(d) > 2048 {
			t.Errorf("truncated image: delta is %d bytes, want ≤ 2048", len(d))
		}
	})
	t.Run("new larger", func(t *testing.T) {
		extra := randomImage(r, 50<<10)
		d := roundTrip(t, img, append(append([]byte(nil), img...), extra...))
		if len(d) > len(extra)+2048 {
			t.Errorf("appended 50KiB: delta is %d bytes", len(d))
		}
	})
}

func TestLargeOffsets(t *testing.T) {
	// Matches must reach back across the whole (16 MiB) old image: the new
	// image is the old one with its halves swapped.
	if testing.Short() {
		t.Skip("16 MiB")
	}
	r := rand.New(rand.NewSource(3))
	old := randomImage(r, 16<<20)
	new := append(append([]byte(nil), old[8<<20:]...), old[:8<<20]...)
	d := roundTrip(t, old, new)
	if len(d) > 64<<10 {
		t.Errorf("swapped halves of 16 MiB: delta is %d bytes, want ≤ 64 KiB", len(d))
	}
	t.Logf("swapped halves: delta %d bytes", len(d))
}

// mkDelta returns a base image and a delta from it to a 1% change.
func mkDelta(t *testing.T) (old, d []byte) {
	r := rand.New(rand.NewSource(11))
	old = firmwareImage(r, 512<<10)
	d, err := Create(old, mutate(r, old, 0.01))
	if err != nil {
		t.Fatal(err)
	}
	return old, d
}

func TestWrongBase(t *testing.T) {
	old, d := mkDelta(t)
	other := append([]byte(nil), old...)
	other[100] ^= 1
	got, err := Apply(other, d)
	if !errors.Is(err, ErrWrongBase) || got != nil {
		t.Fatalf("Apply(wrong base) = %d bytes, %v; want nil, ErrWrongBase", len(got), err)
	}
	if !strings.Contains(err.Error(), "delta is for another base image (sha256 ") {
		t.Errorf("error text: %v", err)
	}
	var buf bytes.Buffer
	if err := ApplyTo(&buf, other, bytes.NewReader(d)); !errors.Is(err, ErrWrongBase) || buf.Len() != 0 {
		t.Fatalf("ApplyTo(wrong base) wrote %d bytes, err %v", buf.Len(), err)
	}
}

func TestCorruptPayload(t *testing.T) {
	old, d := mkDelta(t)
	h, n, err := parseHeader(d)
	if err != nil {
		t.Fatal(err)
	}
	_ = h
	r := rand.New(rand.NewSource(5))
	// Flip one byte at many positions in the payload; every one must fail.
	for i := 0; i < 200; i++ {
		bad := append([]byte(nil), d...)
		pos := n + r.Intn(len(d)-n)
		bad[pos] ^= byte(1 + r.Intn(255))
		got, err := Apply(old, bad)
		if err == nil || got != nil {
			t.Fatalf("flip at %d: Apply succeeded", pos)
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrResultMismatch) {
			t.Fatalf("flip at %d: unexpected error %v", pos, err)
		}
	}
}

func TestTruncated(t *testing.T) {
	old, d := mkDelta(t)
	for _, n := range []int{0, 3, 10, 60, len(d) / 2, len(d) - 1} {
		got, err := Apply(old, d[:n])
		if !errors.Is(err, ErrCorrupt) || got != nil {
			t.Errorf("truncated to %d: got %d bytes, err %v; want ErrCorrupt", n, len(got), err)
		}
		var buf bytes.Buffer
		if err := ApplyTo(&buf, old, bytes.NewReader(d[:n])); !errors.Is(err, ErrCorrupt) {
			t.Errorf("ApplyTo truncated to %d: err %v; want ErrCorrupt", n, err)
		}
	}
}

func TestTamperedHeader(t *testing.T) {
	old, d := mkDelta(t)
	bad := append([]byte(nil), d...)
	off := 5 + len(Format) + 32 // NewSHA256
	bad[off] ^= 0xff
	got, err := Apply(old, bad)
	if !errors.Is(err, ErrResultMismatch) || got != nil {
		t.Fatalf("tampered NewSHA256: got %d bytes, err %v; want ErrResultMismatch", len(got), err)
	}
	if err.Error() != "result does not match the target sha256" {
		t.Errorf("error text %q", err)
	}
	if err := ApplyTo(&bytes.Buffer{}, old, bytes.NewReader(bad)); !errors.Is(err, ErrResultMismatch) {
		t.Fatalf("ApplyTo tampered: %v", err)
	}
	// Tampered format name.
	bad = append([]byte(nil), d...)
	bad[6] ^= 0x20
	if _, err := Apply(old, bad); !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("tampered format: %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	big := make([]byte, MaxImageBytes+1)
	if _, err := Create(nil, big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Create(new too large): %v", err)
	}
	if _, err := Create(big, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Create(old too large): %v", err)
	}
}

// TestFirmware16MiB checks the target on a realistic size: a 1%
// change of a 16 MiB firmware-like image must cost ≤ 10% of the image
// (asserted with margin: ≤ 5%).
func TestFirmware16MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("16 MiB")
	}
	r := rand.New(rand.NewSource(42))
	old := firmwareImage(r, 16<<20)
	new := mutate(r, old, 0.01)
	d := roundTrip(t, old, new)
	pct := 100 * float64(len(d)) / float64(len(new))
	t.Logf("16 MiB firmware, 1%% change: delta %d bytes = %.2f%%", len(d), pct)
	if pct > 5 {
		t.Errorf("delta is %.2f%% of the image, want ≤ 5%% (target 10%%)", pct)
	}
}
