// Package server is the manager's OTA HTTP server: devices download TUF
// metadata, full firmware images and binary deltas (package delta) from it.
//
// Kubernetes lookups are injected through Config as functions, so the package
// is plain HTTP plus an on-disk cache:
//
//	GET|HEAD /ota/v1/{ns}/{repo}/metadata/{file}      TUF metadata (no-store)
//	GET|HEAD /ota/v1/{ns}/{repo}/targets/{path...}    full image
//	GET|HEAD /ota/v1/{ns}/{repo}/deltas/{from}/{to}   delta from one image to another
//
// Images and deltas are cached by content in Config.CacheDir
// (images/<sha256>, deltas/<from>-<to>) and served with http.ServeContent, so
// Range and If-Range requests let devices resume interrupted downloads.
//
// The cache is shared between namespaces, but an image is only served to a
// namespace after Config.Fetch has resolved its digest in that namespace
// (the result is remembered for accessTTL): knowing a digest, or listing it in
// a repository's targets metadata, is not enough to read another namespace's
// image.
//
// A delta is built once per (from, to) pair, at most DeltaBuilds at a time,
// from two images that resolve through Fetch in the request's namespace; the
// repository in its path is not consulted. An unknown base image is answered
// with 404 "no base image <sha256>" and a delta larger than MaxDeltaRatio of
// the image with 404 "delta not smaller than the image" (remembered by a
// marker file): the device then downloads the full image.
//
// CacheDir belongs to one Server: New removes temporary files left in it.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/cairn-platform/cairn/dataplane/ota/delta"
)

// ErrNotFound is returned (possibly wrapped) by the Config functions when the
// requested metadata, target or image does not exist; it is answered with 404.
var ErrNotFound = errors.New("not found")

const (
	defaultMaxDeltaRatio = 0.5
	defaultFetchTimeout  = 30 * time.Minute
	// accessTTL is how long a successful Fetch(ns, sha256) lets ns read the
	// cached image without asking the origin again.
	accessTTL = 10 * time.Minute
	// maxUnknownImageBytes bounds an image fetched without a known length
	// (the delta route).
	maxUnknownImageBytes = 8 << 30
	// immutable is the Cache-Control of content-addressed responses.
	immutable = "public, max-age=31536000, immutable"
)

// Config configures a Server.
type Config struct {
	// CacheDir holds images/<sha256> and deltas/<from>-<to>. Required.
	CacheDir string
	// Metadata returns a TUF metadata file (root.json, 2.root.json,
	// timestamp.json, ...) of repository repo in namespace ns; an error
	// wrapping ErrNotFound is answered with 404. Required.
	Metadata func(ctx context.Context, ns, repo, file string) ([]byte, error)
	// Target maps a target path of the repository to the image's sha256 and
	// length (from its targets metadata). Required.
	Target func(ctx context.Context, ns, repo, path string) (sha256 string, length int64, err error)
	// Fetch opens the image with this sha256 from its origin (an HTTP URL or
	// an OCI registry named by a Firmware); ErrNotFound when no Firmware in ns
	// has it. The server verifies length and sha256 while caching. Fetch is
	// also used to check that ns may read an image that is already cached (the
	// reader is then closed unread), so opening should be cheap. Required.
	Fetch func(ctx context.Context, ns, sha256 string) (io.ReadCloser, error)
	// Authorize checks the request's credentials for namespace ns; false is
	// answered with 401 and WWW-Authenticate. Required.
	Authorize func(r *http.Request, ns string) bool
	// MaxDeltaRatio: a delta larger than this fraction of the full image is
	// not worth it and answered with 404 (default 0.5).
	MaxDeltaRatio float64
	// DeltaBuilds bounds concurrent delta builds (default 1: a build of two
	// 16 MiB images peaks at ~130 MiB heap).
	DeltaBuilds int
	// FetchTimeout bounds one origin download (default 30 minutes). Downloads
	// are shared by concurrent requests and are not cancelled when the
	// request that started them goes away.
	FetchTimeout time.Duration
	// MaxCacheBytes, when > 0, caps the bytes of cached images and deltas:
	// after adding a file the least recently used files not being served are
	// removed until the cache fits.
	MaxCacheBytes int64
	Log           logr.Logger
	Registerer    prometheus.Registerer
}

// Server serves OTA metadata, images and deltas. Create it with New.
type Server struct {
	cfg       Config
	imagesDir string
	deltasDir string
	log       logr.Logger
	m         *metrics

	fetches singleflight.Group // key ns/sha256
	builds  singleflight.Group // key from-to
	sem     chan struct{}      // delta build slots

	mu     sync.Mutex
	access map[string]time.Time // ns/sha256 → expiry

	cache *lru

	// createDelta is delta.Create; tests replace it to count builds.
	createDelta func(old, new []byte) ([]byte, error)
	now         func() time.Time
}

// New validates cfg, creates the cache directories and removes temporary
// files left by an earlier process.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.CacheDir == "":
		return nil, errors.New("ota server: CacheDir is required")
	case cfg.Metadata == nil, cfg.Target == nil, cfg.Fetch == nil, cfg.Authorize == nil:
		return nil, errors.New("ota server: Metadata, Target, Fetch and Authorize are required")
	case cfg.MaxDeltaRatio < 0, cfg.DeltaBuilds < 0, cfg.FetchTimeout < 0, cfg.MaxCacheBytes < 0:
		return nil, errors.New("ota server: MaxDeltaRatio, DeltaBuilds, FetchTimeout and MaxCacheBytes must not be negative")
	}
	if cfg.MaxDeltaRatio == 0 {
		cfg.MaxDeltaRatio = defaultMaxDeltaRatio
	}
	if cfg.DeltaBuilds == 0 {
		cfg.DeltaBuilds = 1
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = defaultFetchTimeout
	}
	log := cfg.Log
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	s := &Server{
		cfg:         cfg,
		imagesDir:   filepath.Join(cfg.CacheDir, "images"),
		deltasDir:   filepath.Join(cfg.CacheDir, "deltas"),
		log:         log,
		m:           newMetrics(cfg.Registerer),
		sem:         make(chan struct{}, cfg.DeltaBuilds),
		access:      map[string]time.Time{},
		createDelta: delta.Create,
		now:         time.Now,
	}
	for _, d := range []string{s.imagesDir, s.deltasDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("ota server: %w", err)
		}
		tmps, _ := filepath.Glob(filepath.Join(d, "*.tmp"))
		for _, t := range tmps {
			_ = os.Remove(t)
		}
	}
	s.cache = newLRU(s)
	if err := s.cache.scan(); err != nil {
		return nil, fmt.Errorf("ota server: scanning cache: %w", err)
	}
	return s, nil
}

// Handler returns the HTTP handler of the /ota/v1/ routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/ota/v1/{ns}/{repo}/metadata/{file}", s.instrument("metadata", s.serveMetadata))
	mux.Handle("/ota/v1/{ns}/{repo}/targets/{path...}", s.instrument("target", s.serveTarget))
	mux.Handle("/ota/v1/{ns}/{repo}/deltas/{from}/{to}", s.instrument("delta", s.serveDelta))
	return mux
}

// respWriter records the status code and body bytes of a response.
type respWriter struct {
	http.ResponseWriter
	code int
	n    int64
}

func (w *respWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// ReadFrom keeps the sendfile path of http.ServeContent.
func (w *respWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := io.Copy(w.ResponseWriter, r)
	w.n += n
	return n, err
}

func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// request is the validated common part of every route.
type request struct {
	ns, repo string
}

// instrument checks the method, the namespace and repository names and the
// credentials, then calls h and records metrics and a log line. It never logs
// request headers.
func (s *Server) instrument(kind string, h func(http.ResponseWriter, *http.Request, request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		rw := &respWriter{ResponseWriter: w}
		req := request{ns: r.PathValue("ns"), repo: r.PathValue("repo")}
		switch {
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			rw.Header().Set("Allow", "GET, HEAD")
			httpError(rw, http.StatusMethodNotAllowed, "method not allowed")
		case !validLabel(req.ns) || !validLabel(req.repo):
			httpError(rw, http.StatusBadRequest, "invalid namespace or repository name")
		case !s.cfg.Authorize(r, req.ns):
			rw.Header().Set("WWW-Authenticate", `Basic realm="cairn-ota", charset="UTF-8"`)
			httpError(rw, http.StatusUnauthorized, "unauthorized")
		default:
			h(rw, r, req)
		}
		if rw.code == 0 {
			rw.code = http.StatusOK
		}
		s.m.requests.WithLabelValues(kind, strconv.Itoa(rw.code)).Inc()
		s.m.bytesSent.WithLabelValues(kind).Add(float64(rw.n))
		s.log.V(1).Info("ota request", "kind", kind, "method", r.Method, "path", r.URL.Path,
			"code", rw.code, "bytes", rw.n, "duration", s.now().Sub(start), "remote", r.RemoteAddr)
	})
}

func httpError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Del("ETag")
	h.Del("Cache-Control")
	h.Set("Cache-Control", "no-store")
	http.Error(w, msg, code)
}

func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request, req request) {
	file := r.PathValue("file")
	if !validMetadataFile(file) {
		httpError(w, http.StatusNotFound, "no such metadata file")
		return
	}
	b, err := s.cfg.Metadata(r.Context(), req.ns, req.repo, file)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			httpError(w, http.StatusNotFound, "metadata not found")
			return
		}
		s.log.Error(err, "reading TUF metadata", "namespace", req.ns, "repo", req.repo, "file", file)
		httpError(w, http.StatusInternalServerError, "metadata unavailable")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

func (s *Server) serveTarget(w http.ResponseWriter, r *http.Request, req request) {
	path := r.PathValue("path")
	if !validTargetPath(path) {
		httpError(w, http.StatusBadRequest, "invalid target path")
		return
	}
	ctx := r.Context()
	sum, length, err := s.cfg.Target(ctx, req.ns, req.repo, path)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			httpError(w, http.StatusNotFound, "target not found")
			return
		}
		s.log.Error(err, "resolving target", "namespace", req.ns, "repo", req.repo, "path", path)
		httpError(w, http.StatusInternalServerError, "target metadata unavailable")
		return
	}
	sum = strings.ToLower(sum)
	if !validSHA256(sum) || length < 0 {
		s.log.Error(nil, "target metadata has an invalid sha256 or length", "namespace", req.ns, "repo", req.repo, "path", path)
		httpError(w, http.StatusInternalServerError, "invalid target metadata")
		return
	}
	defer s.cache.pin(s.imagePath(sum))()
	if err := s.ensureImage(ctx, req.ns, sum, length, true); err != nil {
		s.imageError(w, err, req, sum, "image")
		return
	}
	s.serveFile(w, r, s.imagePath(sum), `"`+sum+`"`)
}

// imageError answers a failed ensureImage.
func (s *Server) imageError(w http.ResponseWriter, err error, req request, sum, what string) {
	switch {
	case errors.Is(err, ErrNotFound):
		msg := "unknown image " + sum
		if what == "base" {
			msg = "no base image " + sum
		}
		httpError(w, http.StatusNotFound, msg)
	case errors.Is(err, errMismatch), errors.Is(err, errOrigin):
		s.log.Error(err, "fetching image from its origin", "namespace", req.ns, "repo", req.repo, "sha256", sum)
		httpError(w, http.StatusBadGateway, "image origin failed")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		httpError(w, http.StatusServiceUnavailable, "timed out")
	default:
		s.log.Error(err, "caching image", "namespace", req.ns, "repo", req.repo, "sha256", sum)
		httpError(w, http.StatusInternalServerError, "image cache failed")
	}
}

// serveFile serves a content-addressed cache file with Range support. The
// caller pins the file.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, name, etag string) {
	f, err := os.Open(name)
	if err != nil {
		// Evicted between the check and here: the device retries.
		s.log.Error(err, "opening cached file", "file", filepath.Base(name))
		httpError(w, http.StatusServiceUnavailable, "cache file unavailable, retry")
		return
	}
	defer func() { _ = f.Close() }()
	h := w.Header()
	h.Set("ETag", etag)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", immutable)
	http.ServeContent(w, r, "", time.Time{}, f)
}
