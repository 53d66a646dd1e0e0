package source

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

const (
	benchCommits  = 3100
	benchFileSize = 100 << 10
	benchLineLen  = 64
)

// peakHeap samples live heap bytes every 2ms while f runs and returns the
// peak above the level before f started (as in dataplane/ota/delta).
func peakHeap(f func()) uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	base := s[0].Value.Uint64()
	peak := base
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
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
	})
	f()
	close(done)
	wg.Wait()
	return peak - base
}

// largeHistoryRepo writes, with git fast-import, a repository whose main
// branch has benchCommits commits each rewriting one line of a
// benchFileSize file (plus a small manifest), and returns its root.
func largeHistoryRepo(b *testing.B) string {
	b.Helper()
	requireGit(b)
	root := b.TempDir()
	dir := filepath.Join(root, "repo")
	runGit(b, root, "init", "-q", "--bare", "-b", "main", dir)
	cmd := exec.Command(gitBin, "fast-import", "--quiet")
	cmd.Dir = dir
	cmd.Env = gitEnv(b.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewSource(1))
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	lines := make([][]byte, benchFileSize/benchLineLen)
	for i := range lines {
		l := make([]byte, benchLineLen)
		for j := range l[:benchLineLen-1] {
			l[j] = letters[r.Intn(len(letters))]
		}
		l[benchLineLen-1] = '\n'
		lines[i] = l
	}
	w := bufio.NewWriterSize(stdin, 1<<20)
	for c := range benchCommits {
		l := lines[r.Intn(len(lines))]
		for j := range 8 {
			l[j] = letters[r.Intn(len(letters))]
		}
		msg := fmt.Sprintf("commit %d", c)
		manifest := fmt.Sprintf("revision: %d\n", c)
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter Test <test@example.com> %d +0000\ndata %d\n%s\n", 1767225600+c, len(msg), msg)
		fmt.Fprintf(w, "M 644 inline app.yaml\ndata %d\n%s\n", len(manifest), manifest)
		fmt.Fprintf(w, "M 644 inline big.txt\ndata %d\n", len(lines)*benchLineLen)
		for _, l := range lines {
			_, _ = w.Write(l)
		}
		_, _ = w.WriteString("\n")
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("git fast-import: %v", err)
	}
	return root
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// BenchmarkFetchLargeHistory fetches the tip of a branch with 3,100 commits
// of a 100 KB file (≈310 MB of file versions, a ≈200 MB repository on the
// server) and
// reports the peak live heap during Fetch: with the default depth 1 it is
// bounded by one tree, not by the history; "full" (Depth -1) shows the cost
// of taking the whole history.
func BenchmarkFetchLargeHistory(b *testing.B) {
	start := time.Now()
	root := largeHistoryRepo(b)
	b.Logf("built %d commits in %v; server repository %.1f MB", benchCommits, time.Since(start).Round(time.Millisecond), float64(dirSize(filepath.Join(root, "repo")))/(1<<20))
	url := serveGitDaemon(b, root) + "/repo"
	for _, bc := range []struct {
		name  string
		depth int
	}{{"depth=1", 0}, {"full", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var peak uint64
			var gitBytes int64
			for b.Loop() {
				dir := filepath.Join(b.TempDir(), "checkout")
				var err error
				p := peakHeap(func() {
					_, err = Fetch(b.Context(), Request{URL: url, Dir: dir, Depth: bc.depth})
				})
				if err != nil {
					b.Fatal(err)
				}
				peak = max(peak, p)
				gitBytes = dirSize(filepath.Join(dir, ".git"))
				_ = os.RemoveAll(dir)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(gitBytes)/(1<<20), "dotgit-MB")
		})
	}
}
