package scan

import (
	"bufio"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-platform/cairn/dataplane/scan/scantest"
)

// BenchmarkScanImage measures a full image scan (resolve, pull, catalogue,
// match) of the fixture image from a loopback registry.
//
// Metrics: ns/op; peak-heap-MiB, the highest live heap (runtime/metrics
// heap objects, sampled every millisecond) during the timed loop; and
// peak-rss-MiB, the process high-water RSS (VmHWM) at the end, which also
// includes setup. For an external RSS figure:
//
//	go test -c -o /tmp/scan.test ./dataplane/scan
//	/usr/bin/time -v /tmp/scan.test -test.run '^$' -test.bench ScanImage -test.benchtime 5x
//
// and read "Maximum resident set size".
func BenchmarkScanImage(b *testing.B) {
	host := scantest.StartRegistry(b)
	scantest.Push(b, host, "cairn/app:bench", scantest.BuildImage(b, scantest.ImageOptions{}))
	sc := NewScanner(Options{DBDir: importedDB(b)})
	defer sc.Close()
	ref := host + "/cairn/app:bench"
	// Warm the DB open so iterations measure scans.
	if _, _, err := sc.ScanImage(b.Context(), ref); err != nil {
		b.Fatal(err)
	}

	// Start from a collected heap so the peak reflects the scans, not the
	// one-time setup garbage (licence matcher, DB open).
	runtime.GC()
	stop := make(chan struct{})
	var peak atomic.Uint64
	done := make(chan struct{})
	go sampleHeap(stop, done, &peak)

	b.ResetTimer()
	for b.Loop() {
		rep, _, err := sc.ScanImage(b.Context(), ref)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := findingByID(rep, scantest.APKVulnID); !ok {
			b.Fatal("planted finding missing")
		}
	}
	b.StopTimer()
	close(stop)
	<-done
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	if hwm := vmHWM(); hwm > 0 {
		b.ReportMetric(float64(hwm)/(1<<20), "peak-rss-MiB")
	}
}

func sampleHeap(stop <-chan struct{}, done chan<- struct{}, peak *atomic.Uint64) {
	defer close(done)
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		metrics.Read(s)
		if v := s[0].Value.Uint64(); v > peak.Load() {
			peak.Store(v)
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// vmHWM reads the process's peak resident set size from /proc (Linux);
// 0 elsewhere.
func vmHWM() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
