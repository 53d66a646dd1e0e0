package delta

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// BenchmarkBsdiff measures the classic bsdiff 4 (Debian's bsdiff/bspatch
// tools) on the images of BenchmarkCreate, to compare formats: delta size,
// time and the tools' peak resident memory. It skips without the tools.
func BenchmarkBsdiff(b *testing.B) {
	bsdiff, err1 := exec.LookPath("bsdiff")
	bspatch, err2 := exec.LookPath("bspatch")
	if err1 != nil || err2 != nil {
		b.Skip("bsdiff/bspatch not installed (Debian package bsdiff)")
	}
	for _, frac := range []float64{0.01, 0.10} {
		c := getBenchCase(b, frac)
		dir := b.TempDir()
		oldPath, newPath, patch, out := filepath.Join(dir, "old"), filepath.Join(dir, "new"), filepath.Join(dir, "patch"), filepath.Join(dir, "out")
		for p, data := range map[string][]byte{oldPath: c.old, newPath: c.new} {
			if err := os.WriteFile(p, data, 0o600); err != nil {
				b.Fatal(err)
			}
		}
		run := func(b *testing.B, name string, args ...string) float64 {
			cmd := exec.Command(name, args...)
			if o, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%s: %v\n%s", name, err, o)
			}
			return float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024 // KiB → MiB
		}
		b.Run(fmt.Sprintf("diff/change=%g%%", frac*100), func(b *testing.B) {
			b.SetBytes(int64(len(c.new)))
			var rss float64
			for b.Loop() {
				rss = max(rss, run(b, bsdiff, oldPath, newPath, patch))
			}
			st, err := os.Stat(patch)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(rss, "peak-rss-MiB")
			b.ReportMetric(float64(st.Size()), "delta-bytes")
			b.ReportMetric(100*float64(st.Size())/float64(len(c.new)), "delta-%-of-full")
		})
		b.Run(fmt.Sprintf("patch/change=%g%%", frac*100), func(b *testing.B) {
			if _, err := os.Stat(patch); err != nil {
				run(b, bsdiff, oldPath, newPath, patch)
			}
			b.SetBytes(int64(len(c.new)))
			var rss float64
			for b.Loop() {
				rss = max(rss, run(b, bspatch, oldPath, out, patch))
			}
			b.ReportMetric(rss, "peak-rss-MiB")
		})
	}
}
