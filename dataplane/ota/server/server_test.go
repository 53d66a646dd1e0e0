package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cairn-platform/cairn/dataplane/ota/delta"
)

const secret = "s3cret"

// origin is a fake set of Firmwares per namespace.
type origin struct {
	mu      sync.Mutex
	images  map[string]map[string][]byte // ns → sha → bytes served
	targets map[string]string            // ns/repo/path → sha
	meta    map[string][]byte            // ns/repo/file → content
	fetches atomic.Int64
	gate    chan struct{} // when set, the first Read of a fetched image waits for it
	metaReq []string
	// failRead makes fetched streams fail after a few bytes.
	failRead bool
}

func newOrigin() *origin {
	return &origin{images: map[string]map[string][]byte{}, targets: map[string]string{}, meta: map[string][]byte{}}
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// add makes img available in ns under target path p of repository "fw".
func (o *origin) add(ns, p string, img []byte) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := sum(img)
	if o.images[ns] == nil {
		o.images[ns] = map[string][]byte{}
	}
	o.images[ns][s] = img
	if p != "" {
		o.targets[ns+"/fw/"+p] = s
	}
	return s
}

type gatedReader struct {
	r    io.Reader
	gate chan struct{}
	once sync.Once
}

func (g *gatedReader) Read(p []byte) (int, error) {
	g.once.Do(func() {
		if g.gate != nil {
			<-g.gate
		}
	})
	return g.r.Read(p)
}

// set replaces what the origin serves for sha in namespace a.
func (o *origin) set(sha string, b []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.images["a"][sha] = b
}

func (o *origin) config(t testing.TB) Config {
	return Config{
		CacheDir: t.TempDir(),
		Metadata: func(_ context.Context, ns, repo, file string) ([]byte, error) {
			o.mu.Lock()
			defer o.mu.Unlock()
			o.metaReq = append(o.metaReq, file)
			b, ok := o.meta[ns+"/"+repo+"/"+file]
			if !ok {
				return nil, fmt.Errorf("metadata %s: %w", file, ErrNotFound)
			}
			return b, nil
		},
		Target: func(_ context.Context, ns, repo, p string) (string, int64, error) {
			o.mu.Lock()
			defer o.mu.Unlock()
			s, ok := o.targets[ns+"/"+repo+"/"+p]
			if !ok {
				return "", 0, fmt.Errorf("target %s: %w", p, ErrNotFound)
			}
			// The length comes from the metadata, i.e. the real image of
			// any namespace holding it.
			for _, imgs := range o.images {
				if b, ok := imgs[s]; ok {
					return s, int64(len(b)), nil
				}
			}
			return s, 1, nil
		},
		Fetch: func(_ context.Context, ns, s string) (io.ReadCloser, error) {
			o.fetches.Add(1)
			o.mu.Lock()
			defer o.mu.Unlock()
			b, ok := o.images[ns][s]
			if !ok {
				return nil, fmt.Errorf("image %s in %s: %w", s, ns, ErrNotFound)
			}
			var r io.Reader = bytes.NewReader(b)
			if o.failRead {
				r = io.MultiReader(bytes.NewReader(b[:10]), iotest.ErrReader(errors.New("connection reset")))
			}
			return io.NopCloser(&gatedReader{r: r, gate: o.gate}), nil
		},
		Authorize: func(r *http.Request, ns string) bool {
			u, p, ok := r.BasicAuth()
			return ok && strings.HasPrefix(u, ns+"/") && p == secret
		},
	}
}

type env struct {
	o   *origin
	s   *Server
	ts  *httptest.Server
	reg *prometheus.Registry
}

func newEnv(t testing.TB, mod func(*Config)) *env {
	t.Helper()
	o := newOrigin()
	cfg := o.config(t)
	reg := prometheus.NewPedanticRegistry()
	cfg.Registerer = reg
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &env{o: o, s: s, ts: ts, reg: reg}
}

type resp struct {
	code int
	h    http.Header
	body []byte
}

// do sends a request as device "<ns>/dev" (ns "" sends no credentials).
func (e *env) do(t testing.TB, method, path, ns string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ns != "" {
		req.SetBasicAuth(ns+"/dev", secret)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{code: res.StatusCode, h: res.Header, body: b}
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// modified returns a copy of img with a few small changes.
func modified(img []byte, seed uint64) []byte {
	out := bytes.Clone(img)
	r := rand.New(rand.NewPCG(seed, 7))
	for range 8 {
		off := r.IntN(len(out) - 64)
		for i := range 32 {
			out[off+i] = byte(r.Uint32())
		}
	}
	return out
}

func TestNewValidates(t *testing.T) {
	o := newOrigin()
	cfg := o.config(t)
	cfg.Fetch = nil
	if _, err := New(cfg); err == nil {
		t.Error("New without Fetch succeeded")
	}
	cfg = o.config(t)
	cfg.CacheDir = ""
	if _, err := New(cfg); err == nil {
		t.Error("New without CacheDir succeeded")
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t, nil)
	for _, f := range []string{"root.json", "2.root.json", "targets.json", "snapshot.json", "timestamp.json", "10.targets.json"} {
		e.o.meta["a/fw/"+f] = []byte(`{"f":"` + f + `"}`)
	}
	for _, f := range []string{"root.json", "2.root.json", "timestamp.json", "10.targets.json"} {
		r := e.do(t, "GET", "/ota/v1/a/fw/metadata/"+f, "a")
		if r.code != 200 || string(r.body) != `{"f":"`+f+`"}` {
			t.Errorf("%s: %d %q", f, r.code, r.body)
		}
		if cc := r.h.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q", f, cc)
		}
		if ct := r.h.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", f, ct)
		}
	}
	r := e.do(t, "HEAD", "/ota/v1/a/fw/metadata/root.json", "a")
	if r.code != 200 || len(r.body) != 0 || r.h.Get("Content-Length") != "17" {
		t.Errorf("HEAD: %d %q Content-Length %q", r.code, r.body, r.h.Get("Content-Length"))
	}
	if r := e.do(t, "GET", "/ota/v1/a/fw/metadata/3.root.json", "a"); r.code != 404 {
		t.Errorf("missing metadata: %d", r.code)
	}
	e.o.mu.Lock()
	e.o.metaReq = nil
	e.o.mu.Unlock()
	for _, f := range []string{"..%2Fx", "..%2F..%2Fetc%2Fpasswd", "foo.json", "0.root.json", "01.root.json", "root.json.bak", "root.JSON", ".root.json", "%2E%2E"} {
		if r := e.do(t, "GET", "/ota/v1/a/fw/metadata/"+f, "a"); r.code != 404 {
			t.Errorf("metadata %q: %d, want 404", f, r.code)
		}
	}
	// Unescaped traversal is cleaned (and redirected) by the mux; it must
	// not reach a handler with a bad name.
	if r := e.do(t, "GET", "/ota/v1/a/fw/metadata/../x", "a"); r.code == 200 {
		t.Errorf("../x: %d", r.code)
	}
	e.o.mu.Lock()
	if len(e.o.metaReq) != 0 {
		t.Errorf("Metadata called with %q", e.o.metaReq)
	}
	e.o.mu.Unlock()
	if got := testutil.ToFloat64(e.s.m.requests.WithLabelValues("metadata", "200")); got != 5 {
		t.Errorf("requests_total{metadata,200} = %v, want 5", got)
	}
}

func TestAuthAndMethods(t *testing.T) {
	e := newEnv(t, nil)
	e.o.meta["a/fw/root.json"] = []byte("{}")
	img := randBytes(1, 1000)
	e.o.add("a", "fw.bin", img)
	for _, p := range []string{"/ota/v1/a/fw/metadata/root.json", "/ota/v1/a/fw/targets/fw.bin", "/ota/v1/a/fw/deltas/" + sum(img) + "/" + sum(img[1:])} {
		for _, ns := range []string{"", "b"} {
			r := e.do(t, "GET", p, ns)
			if r.code != 401 {
				t.Errorf("%s as %q: %d, want 401", p, ns, r.code)
			}
			if !strings.HasPrefix(r.h.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s: WWW-Authenticate %q", p, r.h.Get("WWW-Authenticate"))
			}
		}
		for _, m := range []string{"POST", "PUT", "DELETE"} {
			r := e.do(t, m, p, "a")
			if r.code != 405 || r.h.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d Allow %q", m, p, r.code, r.h.Get("Allow"))
			}
		}
	}
	if n := e.o.fetches.Load(); n != 0 {
		t.Errorf("unauthorized requests fetched %d times", n)
	}
}

func TestInvalidPaths(t *testing.T) {
	e := newEnv(t, nil)
	img := randBytes(1, 1000)
	s := e.o.add("a", "fw.bin", img)
	for _, p := range []string{
		"/ota/v1/A/fw/targets/fw.bin",                      // namespace not a DNS label
		"/ota/v1/a/fw_x/targets/fw.bin",                    // repository not a DNS label
		"/ota/v1/a/fw/targets/..%2Fimages%2F" + s,          // traversal in the target path
		"/ota/v1/a/fw/targets/x%5C..%5Cy",                  // backslashes
		"/ota/v1/a/fw/targets/" + strings.Repeat("x", 513), // too long
		"/ota/v1/a/fw/deltas/" + s + "/xyz",
		"/ota/v1/a/fw/deltas/" + strings.ToUpper(s) + "/" + s,
		"/ota/v1/a/fw/deltas/" + s + "/" + s, // same image
	} {
		if r := e.do(t, "GET", p, "a"); r.code != 400 {
			t.Errorf("%s: %d, want 400", p, r.code)
		}
	}
	for p, ok := range map[string]bool{
		"fw.bin": true, "a/b/c.img": true, "a b": true,
		"": false, "/abs": false, "a//b": false, "a/./b": false, "a/../b": false, "..": false, "a\x00b": false,
		strings.Repeat("a", 512): true, strings.Repeat("a", 513): false,
	} {
		if validTargetPath(p) != ok {
			t.Errorf("validTargetPath(%q) = %v", p, !ok)
		}
	}
}

func TestTargetRangeResume(t *testing.T) {
	e := newEnv(t, nil)
	img := randBytes(2, 300_000)
	s := e.o.add("a", "images/fw-1.2.bin", img)
	const p = "/ota/v1/a/fw/targets/images/fw-1.2.bin"

	r := e.do(t, "GET", p, "a")
	if r.code != 200 || !bytes.Equal(r.body, img) {
		t.Fatalf("GET: %d, %d bytes", r.code, len(r.body))
	}
	if r.h.Get("ETag") != `"`+s+`"` || r.h.Get("Content-Type") != "application/octet-stream" ||
		!strings.Contains(r.h.Get("Cache-Control"), "immutable") || r.h.Get("Accept-Ranges") != "bytes" {
		t.Errorf("headers: %v", r.h)
	}
	if _, err := os.Stat(filepath.Join(e.s.imagesDir, s)); err != nil {
		t.Errorf("image not cached: %v", err)
	}

	// Interrupted downloads resumed with bytes=N- reassemble the image.
	var got []byte
	for i := 0; len(got) < len(img); i++ {
		req, _ := http.NewRequest("GET", e.ts.URL+p, nil)
		req.SetBasicAuth("a/dev", secret)
		if len(got) > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", len(got)))
			req.Header.Set("If-Range", `"`+s+`"`)
		}
		res, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		want := 200
		if len(got) > 0 {
			want = 206
		}
		if res.StatusCode != want {
			t.Fatalf("resumption %d: %d, want %d", i, res.StatusCode, want)
		}
		b, _ := io.ReadAll(io.LimitReader(res.Body, 70_001)) // connection "drops"
		res.Body.Close()
		got = append(got, b...)
	}
	if !bytes.Equal(got, img) {
		t.Fatal("resumed download differs from the image")
	}

	r = e.do(t, "GET", p, "a", "Range", "bytes=1000-1999")
	if r.code != 206 || !bytes.Equal(r.body, img[1000:2000]) || r.h.Get("Content-Range") != fmt.Sprintf("bytes 1000-1999/%d", len(img)) {
		t.Errorf("bytes=1000-1999: %d %d bytes %q", r.code, len(r.body), r.h.Get("Content-Range"))
	}
	// If-Range with another ETag: the whole (changed) content.
	r = e.do(t, "GET", p, "a", "Range", "bytes=1000-", "If-Range", `"`+strings.Repeat("0", 64)+`"`)
	if r.code != 200 || !bytes.Equal(r.body, img) {
		t.Errorf("wrong If-Range: %d, %d bytes", r.code, len(r.body))
	}
	r = e.do(t, "GET", p, "a", "If-None-Match", `"`+s+`"`)
	if r.code != 304 {
		t.Errorf("If-None-Match: %d", r.code)
	}
	r = e.do(t, "HEAD", p, "a")
	if r.code != 200 || len(r.body) != 0 || r.h.Get("Content-Length") != fmt.Sprint(len(img)) {
		t.Errorf("HEAD: %d %d bytes, Content-Length %q", r.code, len(r.body), r.h.Get("Content-Length"))
	}
	if r := e.do(t, "GET", "/ota/v1/a/fw/targets/nope.bin", "a"); r.code != 404 {
		t.Errorf("unknown target: %d", r.code)
	}
	if n := e.o.fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
	if got := testutil.ToFloat64(e.s.m.bytesSent.WithLabelValues("target")); got < float64(3*len(img)) {
		t.Errorf("bytes_sent_total{target} = %v", got)
	}
	if got := testutil.ToFloat64(e.s.m.cacheFetches.WithLabelValues("fetched")); got != 1 {
		t.Errorf("cache_fetches_total{fetched} = %v", got)
	}
}

func TestFetchedImageMismatch(t *testing.T) {
	e := newEnv(t, nil)
	img := randBytes(3, 50_000)
	s := e.o.add("a", "fw.bin", img)
	// The origin serves other bytes (same length) under this digest.
	bad := bytes.Clone(img)
	bad[100] ^= 1
	e.o.set(s, bad)
	if r := e.do(t, "GET", "/ota/v1/a/fw/targets/fw.bin", "a"); r.code != 502 {
		t.Errorf("corrupt image: %d, want 502", r.code)
	}
	// A truncated image.
	e.o.set(s, img[:len(img)-1])
	if r := e.do(t, "GET", "/ota/v1/a/fw/targets/fw.bin", "a"); r.code != 502 {
		t.Errorf("short image: %d, want 502", r.code)
	}
	// A longer one.
	e.o.set(s, append(bytes.Clone(img), 0))
	if r := e.do(t, "GET", "/ota/v1/a/fw/targets/fw.bin", "a"); r.code != 502 {
		t.Errorf("long image: %d, want 502", r.code)
	}
	// The origin's stream breaks.
	e.o.mu.Lock()
	e.o.failRead = true
	e.o.mu.Unlock()
	if r := e.do(t, "GET", "/ota/v1/a/fw/targets/fw.bin", "a"); r.code != 502 {
		t.Errorf("broken stream: %d, want 502", r.code)
	}
	e.o.mu.Lock()
	e.o.failRead = false
	e.o.mu.Unlock()
	ents, _ := os.ReadDir(e.s.imagesDir)
	if len(ents) != 0 {
		t.Errorf("cache holds %v after failed fetches", ents)
	}
	if got := testutil.ToFloat64(e.s.m.cacheFetches.WithLabelValues("mismatch")); got != 3 {
		t.Errorf("cache_fetches_total{mismatch} = %v", got)
	}
	// Once the origin is fixed the image is served.
	e.o.set(s, img)
	if r := e.do(t, "GET", "/ota/v1/a/fw/targets/fw.bin", "a"); r.code != 200 || !bytes.Equal(r.body, img) {
		t.Errorf("fixed origin: %d", r.code)
	}
}

func TestConcurrentTargetMissesFetchOnce(t *testing.T) {
	e := newEnv(t, nil)
	img := randBytes(4, 200_000)
	e.o.add("a", "fw.bin", img)
	e.o.mu.Lock()
	e.o.gate = make(chan struct{})
	e.o.mu.Unlock()
	const n = 8
	var wg sync.WaitGroup
	codes := make([]int, n)
	bodies := make([][]byte, n)
	for i := range n {
		wg.Go(func() {
			r := e.do(t, "GET", "/ota/v1/a/fw/targets/fw.bin", "a")
			codes[i], bodies[i] = r.code, r.body
		})
	}
	time.Sleep(200 * time.Millisecond)
	close(e.o.gate)
	wg.Wait()
	for i := range n {
		if codes[i] != 200 || !bytes.Equal(bodies[i], img) {
			t.Errorf("request %d: %d, %d bytes", i, codes[i], len(bodies[i]))
		}
	}
	if got := e.o.fetches.Load(); got != 1 {
		t.Errorf("%d fetches, want 1", got)
	}
}

// countBuilds wraps delta.Create with a counter and a delay, so concurrent
// requests overlap with the build.
func countBuilds(s *Server, delay time.Duration) *atomic.Int64 {
	var n atomic.Int64
	s.createDelta = func(old, new []byte) ([]byte, error) {
		n.Add(1)
		time.Sleep(delay)
		return delta.Create(old, new)
	}
	return &n
}

func TestDelta(t *testing.T) {
	e := newEnv(t, nil)
	builds := countBuilds(e.s, 200*time.Millisecond)
	old := randBytes(5, 400_000)
	img := modified(old, 1)
	from := e.o.add("a", "fw-1.bin", old)
	to := e.o.add("a", "fw-2.bin", img)
	p := "/ota/v1/a/fw/deltas/" + from + "/" + to

	const n = 6
	var wg sync.WaitGroup
	res := make([]resp, n)
	for i := range n {
		wg.Go(func() { res[i] = e.do(t, "GET", p, "a") })
	}
	wg.Wait()
	for i, r := range res {
		if r.code != 200 || !bytes.Equal(r.body, res[0].body) {
			t.Fatalf("request %d: %d %q", i, r.code, r.body[:min(len(r.body), 100)])
		}
	}
	d := res[0].body
	if got := builds.Load(); got != 1 {
		t.Errorf("%d builds, want 1", got)
	}
	if got := testutil.ToFloat64(e.s.m.deltaBuilds.WithLabelValues("built")); got != 1 {
		t.Errorf("delta_builds_total{built} = %v", got)
	}
	if len(d) > len(img)/10 {
		t.Errorf("delta is %d bytes for a %d-byte image", len(d), len(img))
	}
	got, err := delta.Apply(old, d)
	if err != nil || !bytes.Equal(got, img) {
		t.Fatalf("Apply: %v", err)
	}
	h, err := delta.ReadHeader(d)
	if err != nil || hex.EncodeToString(h.NewSHA256[:]) != to {
		t.Errorf("header %+v %v", h, err)
	}
	if res[0].h.Get("ETag") != `"`+from+"-"+to+`"` {
		t.Errorf("ETag %q", res[0].h.Get("ETag"))
	}
	// Resume a delta download.
	half := len(d) / 2
	r := e.do(t, "GET", p, "a", "Range", fmt.Sprintf("bytes=%d-", half), "If-Range", `"`+from+"-"+to+`"`)
	if r.code != 206 || !bytes.Equal(append(bytes.Clone(d[:half]), r.body...), d) {
		t.Errorf("resumed delta: %d", r.code)
	}
	if r := e.do(t, "HEAD", p, "a"); r.code != 200 || r.h.Get("Content-Length") != fmt.Sprint(len(d)) {
		t.Errorf("HEAD: %d %q", r.code, r.h.Get("Content-Length"))
	}
	if got := builds.Load(); got != 1 {
		t.Errorf("%d builds after cached requests, want 1", got)
	}
	// A new server on the same cache directory serves the stored delta.
	s2, err := New(Config{CacheDir: e.s.cfg.CacheDir, Metadata: e.s.cfg.Metadata, Target: e.s.cfg.Target, Fetch: e.s.cfg.Fetch, Authorize: e.s.cfg.Authorize})
	if err != nil {
		t.Fatal(err)
	}
	b2 := countBuilds(s2, 0)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", p, nil)
	req.SetBasicAuth("a/dev", secret)
	s2.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), d) || b2.Load() != 0 {
		t.Errorf("restarted server: %d, %d builds", rec.Code, b2.Load())
	}
}

func TestDeltaTooLarge(t *testing.T) {
	e := newEnv(t, nil)
	builds := countBuilds(e.s, 0)
	from := e.o.add("a", "fw-1.bin", randBytes(6, 100_000))
	to := e.o.add("a", "fw-2.bin", randBytes(7, 100_000)) // unrelated: no gain
	p := "/ota/v1/a/fw/deltas/" + from + "/" + to
	for i := range 3 {
		r := e.do(t, "GET", p, "a")
		if r.code != 404 || !strings.Contains(string(r.body), "delta not smaller than the image") {
			t.Errorf("request %d: %d %q", i, r.code, r.body)
		}
	}
	if got := builds.Load(); got != 1 {
		t.Errorf("%d builds, want 1", got)
	}
	if got := testutil.ToFloat64(e.s.m.deltaBuilds.WithLabelValues("too_large")); got != 1 {
		t.Errorf("delta_builds_total{too_large} = %v", got)
	}
	if _, err := os.Stat(filepath.Join(e.s.deltasDir, from+"-"+to)); !os.IsNotExist(err) {
		t.Errorf("too-large delta stored: %v", err)
	}
	// The full image is still served.
	if r := e.do(t, "GET", "/ota/v1/a/fw/targets/fw-2.bin", "a"); r.code != 200 {
		t.Errorf("full image: %d", r.code)
	}
}

func TestDeltaUnknownImages(t *testing.T) {
	e := newEnv(t, nil)
	builds := countBuilds(e.s, 0)
	to := e.o.add("a", "fw-2.bin", randBytes(8, 10_000))
	unknown := sum([]byte("never released"))
	r := e.do(t, "GET", "/ota/v1/a/fw/deltas/"+unknown+"/"+to, "a")
	if r.code != 404 || !strings.Contains(string(r.body), "no base image "+unknown) {
		t.Errorf("unknown base: %d %q", r.code, r.body)
	}
	r = e.do(t, "GET", "/ota/v1/a/fw/deltas/"+to+"/"+unknown, "a")
	if r.code != 404 || !strings.Contains(string(r.body), "unknown image "+unknown) {
		t.Errorf("unknown target: %d %q", r.code, r.body)
	}
	if builds.Load() != 0 {
		t.Error("built a delta for an unknown image")
	}
}

func TestNamespaceIsolation(t *testing.T) {
	e := newEnv(t, nil)
	builds := countBuilds(e.s, 0)
	oldA := randBytes(9, 100_000)
	newA := modified(oldA, 2)
	from := e.o.add("a", "fw-1.bin", oldA)
	to := e.o.add("a", "fw-2.bin", newA)
	// Namespace a caches both images and the delta.
	if r := e.do(t, "GET", "/ota/v1/a/fw/targets/fw-2.bin", "a"); r.code != 200 {
		t.Fatalf("a target: %d", r.code)
	}
	if r := e.do(t, "GET", "/ota/v1/a/fw/deltas/"+from+"/"+to, "a"); r.code != 200 {
		t.Fatalf("a delta: %d", r.code)
	}
	// Namespace b lists a's digest in its own targets metadata, but no
	// Firmware of b has the image.
	e.o.mu.Lock()
	e.o.targets["b/fw/stolen.bin"] = to
	e.o.mu.Unlock()
	if r := e.do(t, "GET", "/ota/v1/b/fw/targets/stolen.bin", "b"); r.code != 404 || bytes.Contains(r.body, newA[:64]) {
		t.Errorf("b reads a's cached image: %d", r.code)
	}
	if r := e.do(t, "GET", "/ota/v1/b/fw/deltas/"+from+"/"+to, "b"); r.code != 404 {
		t.Errorf("b reads a's cached delta: %d", r.code)
	}
	// b with its own Firmware for the same base image still may not read
	// the delta to a's image.
	e.o.add("b", "", oldA)
	if r := e.do(t, "GET", "/ota/v1/b/fw/deltas/"+from+"/"+to, "b"); r.code != 404 {
		t.Errorf("b reads a delta to a's image: %d", r.code)
	}
	// Once b has a Firmware for the image too, the shared cache serves it.
	e.o.add("b", "", newA)
	if r := e.do(t, "GET", "/ota/v1/b/fw/targets/stolen.bin", "b"); r.code != 200 || !bytes.Equal(r.body, newA) {
		t.Errorf("b with its own Firmware: %d", r.code)
	}
	if r := e.do(t, "GET", "/ota/v1/b/fw/deltas/"+from+"/"+to, "b"); r.code != 200 {
		t.Errorf("b delta with its own Firmware: %d", r.code)
	}
	if builds.Load() != 1 {
		t.Errorf("%d builds, want 1", builds.Load())
	}
	if got := testutil.ToFloat64(e.s.m.cacheFetches.WithLabelValues("fetched")); got != 2 {
		t.Errorf("cache_fetches_total{fetched} = %v, want 2 (the cache is shared)", got)
	}
	if got := testutil.ToFloat64(e.s.m.cacheFetches.WithLabelValues("verified")); got != 2 {
		t.Errorf("cache_fetches_total{verified} = %v, want 2", got)
	}
}

func TestCacheEviction(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxCacheBytes = 250_000 })
	imgs := [][]byte{randBytes(10, 100_000), randBytes(11, 100_000), randBytes(12, 100_000)}
	sums := make([]string, len(imgs))
	for i, img := range imgs {
		sums[i] = e.o.add("a", fmt.Sprintf("fw-%d.bin", i), img)
	}
	for i := range imgs {
		if r := e.do(t, "GET", fmt.Sprintf("/ota/v1/a/fw/targets/fw-%d.bin", i), "a"); r.code != 200 || !bytes.Equal(r.body, imgs[i]) {
			t.Fatalf("image %d: %d", i, r.code)
		}
		time.Sleep(5 * time.Millisecond) // distinct last-use times
	}
	if _, err := os.Stat(filepath.Join(e.s.imagesDir, sums[0])); !os.IsNotExist(err) {
		t.Errorf("least recently used image not evicted: %v", err)
	}
	for _, s := range sums[1:] {
		if _, err := os.Stat(filepath.Join(e.s.imagesDir, s)); err != nil {
			t.Errorf("recent image evicted: %v", err)
		}
	}
	if got := testutil.ToFloat64(e.s.m.cacheBytes); got != 200_000 {
		t.Errorf("cache_bytes = %v", got)
	}
	// The evicted image is fetched again.
	if r := e.do(t, "GET", "/ota/v1/a/fw/targets/fw-0.bin", "a"); r.code != 200 || !bytes.Equal(r.body, imgs[0]) {
		t.Errorf("refetched image: %d", r.code)
	}
	if n := e.o.fetches.Load(); n != 4 {
		t.Errorf("%d fetches, want 4", n)
	}
}

func TestMetricsRegistered(t *testing.T) {
	e := newEnv(t, nil)
	e.o.add("a", "fw.bin", randBytes(13, 1000))
	e.do(t, "GET", "/ota/v1/a/fw/targets/fw.bin", "a")
	e.do(t, "GET", "/ota/v1/a/fw/targets/fw.bin", "")
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(`
# HELP cairn_ota_server_requests_total OTA HTTP requests, by kind (metadata, target, delta) and status code.
# TYPE cairn_ota_server_requests_total counter
cairn_ota_server_requests_total{code="200",kind="target"} 1
cairn_ota_server_requests_total{code="401",kind="target"} 1
`), "cairn_ota_server_requests_total"); err != nil {
		t.Error(err)
	}
	if _, err := e.reg.Gather(); err != nil {
		t.Error(err)
	}
}

func BenchmarkDeltaServe(b *testing.B) {
	e := newEnv(b, nil)
	old := randBytes(14, 16<<20)
	img := modified(old, 3)
	from := e.o.add("a", "fw-1.bin", old)
	to := e.o.add("a", "fw-2.bin", img)
	p := "/ota/v1/a/fw/deltas/" + from + "/" + to
	if r := e.do(b, "GET", p, "a"); r.code != 200 {
		b.Fatalf("first request: %d", r.code)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if r := e.do(b, "GET", p, "a"); r.code != 200 {
			b.Fatalf("%d", r.code)
		}
	}
}

func TestPinnedFilesAreNotEvicted(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxCacheBytes = 100 })
	c := e.s.cache
	a, b := filepath.Join(e.s.imagesDir, "a"), filepath.Join(e.s.imagesDir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, make([]byte, 80), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	unpin := c.pin(a)
	c.add(a, 80)
	c.add(b, 80) // over the cap, but a is pinned and b was just added
	for _, p := range []string{a, b} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s evicted: %v", filepath.Base(p), err)
		}
	}
	unpin()
	c.add(b, 80) // b is kept, a (no longer pinned) goes
	if _, err := os.Stat(a); !os.IsNotExist(err) {
		t.Errorf("unpinned file not evicted: %v", err)
	}
	if _, err := os.Stat(b); err != nil {
		t.Errorf("b evicted: %v", err)
	}
}

func TestCachedDeltaNeedsNoImages(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxCacheBytes = 210_000 })
	builds := countBuilds(e.s, 0)
	old := randBytes(15, 100_000)
	from := e.o.add("a", "fw-1.bin", old)
	to := e.o.add("a", "fw-2.bin", modified(old, 4))
	e.o.add("a", "other.bin", randBytes(16, 100_000))
	p := "/ota/v1/a/fw/deltas/" + from + "/" + to
	r := e.do(t, "GET", p, "a")
	if r.code != 200 {
		t.Fatalf("delta: %d", r.code)
	}
	time.Sleep(5 * time.Millisecond)
	// Another image pushes the base image out of the cache.
	if r := e.do(t, "GET", "/ota/v1/a/fw/targets/other.bin", "a"); r.code != 200 {
		t.Fatalf("other image: %d", r.code)
	}
	if _, err := os.Stat(filepath.Join(e.s.imagesDir, from)); !os.IsNotExist(err) {
		t.Fatalf("base image not evicted: %v", err)
	}
	fetches := e.o.fetches.Load()
	if r2 := e.do(t, "GET", p, "a"); r2.code != 200 || !bytes.Equal(r2.body, r.body) {
		t.Errorf("cached delta: %d", r2.code)
	}
	if n := e.o.fetches.Load() - fetches; n != 0 {
		t.Errorf("%d fetches for a cached delta", n)
	}
	// After the access check expires the origin is asked again, but the
	// image is not downloaded.
	e.s.mu.Lock()
	for k := range e.s.access {
		e.s.access[k] = time.Now().Add(-time.Second)
	}
	e.s.mu.Unlock()
	if r2 := e.do(t, "GET", p, "a"); r2.code != 200 {
		t.Errorf("cached delta after accessTTL: %d", r2.code)
	}
	if _, err := os.Stat(filepath.Join(e.s.imagesDir, from)); !os.IsNotExist(err) {
		t.Errorf("base image downloaded for a cached delta: %v", err)
	}
	if got := testutil.ToFloat64(e.s.m.cacheFetches.WithLabelValues("verified")); got != 2 {
		t.Errorf("cache_fetches_total{verified} = %v, want 2", got)
	}
	if builds.Load() != 1 {
		t.Errorf("%d builds", builds.Load())
	}
}
