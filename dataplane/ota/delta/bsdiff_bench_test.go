package delta

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkBsdiff measures the classic bsdiff 4 (Debian's bsdiff/bspatch
// tools) on the images of BenchmarkCreate, to compare formats: delta size,
// time and the tools' peak resident memory. It skips without the tools.
func BenchmarkBsdiff(b *testing.B) {
	bsdiff, err1 := exec.LookPath("bsdiff")
	bspatch, err2 := exec.LookPath("bspatch")
	gnuTime, err3 := exec.LookPath("time")
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		gnuTime, err3 = "/usr/bin/time", nil
	}
	if err1 != nil || err2 != nil || err3 != nil {
		b.Skip("needs bsdiff, bspatch (Debian package bsdiff) and GNU time (package time)")
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
			// GNU time reports the tool's own peak RSS: the rusage Go gets
			// for a direct child counts the test process's pages (the child
			// starts as a CLONE_VM copy of it).
			cmd := exec.Command(gnuTime, append([]string{"-f", "%M", name}, args...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				b.Fatalf("%s: %v\n%s", name, err, stderr.String())
			}
			fields := strings.Fields(stderr.String())
			kib, err := strconv.ParseFloat(fields[len(fields)-1], 64)
			if err != nil {
				b.Fatalf("%s: reading the peak RSS: %v (%q)", name, err, stderr.String())
			}
			return kib / 1024
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
