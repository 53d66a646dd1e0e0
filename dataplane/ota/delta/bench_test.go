package delta

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math/rand"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

const benchImageSize = 16 << 20

var (
	benchOnce sync.Map // frac -> *benchCase
)

type benchCase struct {
	old, new, delta []byte
	gzipLen         int
}

func getBenchCase(b *testing.B, frac float64) *benchCase {
	if v, ok := benchOnce.Load(frac); ok {
		return v.(*benchCase)
	}
	r := rand.New(rand.NewSource(42))
	old := firmwareImage(r, benchImageSize)
	new := mutate(r, old, frac)
	d, err := Create(old, new)
	if err != nil {
		b.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(new); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	c := &benchCase{old: old, new: new, delta: d, gzipLen: gz.Len()}
	benchOnce.Store(frac, c)
	return c
}

// peakHeap samples live heap bytes every 2ms while f runs and returns the
// peak above the level before f started (after a GC).
func peakHeap(f func()) uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	base := s[0].Value.Uint64()
	peak := base
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		ss := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			select {
			case <-done:
				return
			case <-t.C:
				metrics.Read(ss)
				if v := ss[0].Value.Uint64(); v > peak {
					peak = v
				}
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	metrics.Read(s)
	if v := s[0].Value.Uint64(); v > peak {
		peak = v
	}
	return peak - base
}

func reportSizes(b *testing.B, c *benchCase) {
	full := float64(len(c.new))
	b.ReportMetric(float64(len(c.delta)), "delta-bytes")
	b.ReportMetric(100*float64(len(c.delta))/full, "delta-%-of-full")
	b.ReportMetric(100*float64(c.gzipLen)/full, "gzip-%-of-full")
}

func BenchmarkCreate(b *testing.B) {
	for _, frac := range []float64{0.01, 0.10} {
		b.Run(fmt.Sprintf("change=%g%%", frac*100), func(b *testing.B) {
			c := getBenchCase(b, frac)
			b.ReportAllocs()
			b.SetBytes(int64(len(c.new)))
			var peak uint64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var err error
				p := peakHeap(func() { _, err = Create(c.old, c.new) })
				if err != nil {
					b.Fatal(err)
				}
				peak = max(peak, p)
			}
			b.StopTimer()
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			reportSizes(b, c)
		})
	}
}

func BenchmarkApply(b *testing.B) {
	for _, frac := range []float64{0.01, 0.10} {
		b.Run(fmt.Sprintf("change=%g%%", frac*100), func(b *testing.B) {
			c := getBenchCase(b, frac)
			b.ReportAllocs()
			b.SetBytes(int64(len(c.new)))
			var peak uint64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var err error
				var out []byte
				p := peakHeap(func() { out, err = Apply(c.old, c.delta) })
				if err != nil || len(out) != len(c.new) {
					b.Fatal(err)
				}
				peak = max(peak, p)
			}
			b.StopTimer()
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			reportSizes(b, c)
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func BenchmarkApplyTo(b *testing.B) {
	for _, frac := range []float64{0.01, 0.10} {
		b.Run(fmt.Sprintf("change=%g%%", frac*100), func(b *testing.B) {
			c := getBenchCase(b, frac)
			b.ReportAllocs()
			b.SetBytes(int64(len(c.new)))
			var peak uint64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var err error
				p := peakHeap(func() { err = ApplyTo(discard{}, c.old, bytes.NewReader(c.delta)) })
				if err != nil {
					b.Fatal(err)
				}
				peak = max(peak, p)
			}
			b.StopTimer()
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		})
	}
}
