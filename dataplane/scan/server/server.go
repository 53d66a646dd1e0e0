// Package server is the scanner service's HTTP front (cmd/scanner): it
// scans images on request for the manager's scan gates and answers
// scanapi types. Reports are cached by image digest and database, so a
// GitRepo resynced every few minutes costs a registry HEAD, not a scan.
package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-platform/cairn/dataplane/scan"
	"github.com/cairn-platform/cairn/dataplane/scan/report"
	"github.com/cairn-platform/cairn/dataplane/scan/scanapi"
)

// Options configure a Server.
type Options struct {
	Scanner *scan.Scanner
	// Token, when set, must be sent as "Authorization: Bearer <token>".
	Token string
	// MaxConcurrent bounds simultaneous scans (each holds an image's
	// layers and catalogue in memory); default 2.
	MaxConcurrent int
	// CacheSize is how many reports are kept; default 512.
	CacheSize int
	// ScanTimeout bounds one scan; default 10 minutes. Scans run detached
	// from the request that started them, so a client that gives up (a
	// controller's sync timeout) finds the result cached on its retry
	// instead of starting over.
	ScanTimeout time.Duration
	Log         logr.Logger
	Registerer  prometheus.Registerer
}

// Server answers scan requests.
type Server struct {
	opts    Options
	slots   chan struct{}
	metrics *metrics

	mu      sync.Mutex
	cache   map[string]report.Report // by digest reference + DB build
	order   []string
	flights map[string]*flight // scans in progress, by the same key
}

// flight is one scan in progress; done is closed when rep and err are set.
type flight struct {
	done chan struct{}
	rep  report.Report
	err  error
}

// New returns a Server.
func New(o Options) (*Server, error) {
	if o.Scanner == nil {
		return nil, errors.New("server: no scanner")
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = 2
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 512
	}
	if o.ScanTimeout <= 0 {
		o.ScanTimeout = 10 * time.Minute
	}
	m := newMetrics()
	if o.Registerer != nil {
		if err := m.register(o.Registerer); err != nil {
			return nil, err
		}
	}
	return &Server{opts: o, slots: make(chan struct{}, o.MaxConcurrent), metrics: m, cache: map[string]report.Report{}, flights: map[string]*flight{}}, nil
}

// Handler serves scanapi.ScanImagePath and scanapi.HealthPath.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+scanapi.ScanImagePath, s.authorized(s.scanImage))
	mux.HandleFunc("POST "+scanapi.ScanSBOMPath, s.authorized(s.scanSBOM))
	mux.HandleFunc("GET "+scanapi.HealthPath, s.health)
	return mux
}

// Forget drops every cached report; call it after a new database is loaded.
func (s *Server) Forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache, s.order = map[string]report.Report{}, nil
}

func (s *Server) authorized(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Token != "" {
			got := []byte(r.Header.Get("Authorization"))
			if subtle.ConstantTimeCompare(got, []byte("Bearer "+s.opts.Token)) != 1 {
				writeError(w, http.StatusUnauthorized, scanapi.CodeUnauthenticated, "missing or wrong bearer token (the scanner's --token-file)")
				return
			}
		}
		next(w, r)
	}
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	built, err := s.opts.Scanner.DBBuilt()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, scanapi.CodeNoDatabase, err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprintf(w, "ok: vulnerability database built %s\n", built)
}

func (s *Server) scanImage(w http.ResponseWriter, r *http.Request) {
	var req scanapi.ScanImageRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || req.Image == "" {
		writeError(w, http.StatusBadRequest, scanapi.CodeBadRequest, `body must be {"image": "<reference>"}`)
		return
	}
	log := s.opts.Log.WithValues("image", req.Image)
	rep, cached, err := s.scan(r.Context(), req.Image)
	if err != nil {
		code, status := classify(err)
		s.metrics.scans.WithLabelValues(code).Inc()
		log.Info("scan failed", "code", code, "error", err.Error())
		writeError(w, status, code, err.Error())
		return
	}
	result := "scanned"
	if cached {
		result = "cached"
	}
	s.metrics.scans.WithLabelValues(result).Inc()
	log.V(1).Info("scan done", "digest", rep.Digest, "findings", len(rep.Findings), "cached", cached)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}

// MaxSBOMBytes bounds an SBOM sent for matching.
const MaxSBOMBytes = 64 << 20

func (s *Server) scanSBOM(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxSBOMBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, scanapi.CodeBadRequest, fmt.Sprintf("SBOM larger than %d bytes", MaxSBOMBytes))
		return
	}
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	rep, cached, err := s.cachedScan(r.Context(), digest, func(ctx context.Context) (report.Report, error) {
		rep, _, err := s.opts.Scanner.ScanSBOM(ctx, bytes.NewReader(data))
		return rep, err
	})
	if err != nil {
		code, status := classify(err)
		s.metrics.scans.WithLabelValues(code).Inc()
		writeError(w, status, code, err.Error())
		return
	}
	s.metrics.scans.WithLabelValues(map[bool]string{true: "cached", false: "scanned"}[cached]).Inc()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}

// scan resolves the tag, answers from the cache when this digest was
// scanned with this database, and scans otherwise.
func (s *Server) scan(ctx context.Context, image string) (report.Report, bool, error) {
	pinned, err := s.opts.Scanner.ResolveImage(ctx, image)
	if err != nil {
		return report.Report{}, false, err
	}
	rep, cached, err := s.cachedScan(ctx, pinned, func(ctx context.Context) (report.Report, error) {
		rep, _, err := s.opts.Scanner.ScanImage(ctx, pinned)
		return rep, err
	})
	rep.Subject = image
	return rep, cached, err
}

// cachedScan answers from the cache for (key, database build), joins a scan
// of the same key in progress, or starts one in a bounded slot. The scan
// runs detached from ctx: ctx only bounds how long this caller waits.
func (s *Server) cachedScan(ctx context.Context, key string, scan func(context.Context) (report.Report, error)) (report.Report, bool, error) {
	built, err := s.opts.Scanner.DBBuilt()
	if err != nil {
		return report.Report{}, false, err
	}
	key += " " + built
	s.mu.Lock()
	if rep, ok := s.cache[key]; ok {
		s.mu.Unlock()
		return rep, true, nil
	}
	f, running := s.flights[key]
	if !running {
		f = &flight{done: make(chan struct{})}
		s.flights[key] = f
		go s.run(key, f, scan)
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		return f.rep, false, f.err
	case <-ctx.Done():
		return report.Report{}, false, fmt.Errorf("waiting for the scan (it goes on; ask again for the result): %w", ctx.Err())
	}
}

// run performs one scan in a slot and publishes its result.
func (s *Server) run(key string, f *flight, scan func(context.Context) (report.Report, error)) {
	defer func() {
		s.mu.Lock()
		delete(s.flights, key)
		if f.err == nil {
			s.storeLocked(key, f.rep)
		}
		s.mu.Unlock()
		close(f.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ScanTimeout)
	defer cancel()
	s.slots <- struct{}{}
	defer func() { <-s.slots }()
	start := time.Now()
	f.rep, f.err = scan(ctx)
	if f.err == nil {
		s.metrics.duration.Observe(time.Since(start).Seconds())
	}
}

func (s *Server) storeLocked(key string, rep report.Report) {
	if _, ok := s.cache[key]; ok {
		return
	}
	if len(s.order) >= s.opts.CacheSize {
		delete(s.cache, s.order[0])
		s.order = s.order[1:]
	}
	s.cache[key] = rep
	s.order = append(s.order, key)
}

// classify maps scan errors to scanapi codes and HTTP statuses.
func classify(err error) (string, int) {
	switch {
	case errors.Is(err, scan.ErrImageNotFound):
		return scanapi.CodeImageNotFound, http.StatusNotFound
	case errors.Is(err, scan.ErrUnauthorized):
		return scanapi.CodeUnauthorized, http.StatusForbidden
	case errors.Is(err, scan.ErrInvalidSBOM):
		return scanapi.CodeInvalidSBOM, http.StatusUnprocessableEntity
	case errors.Is(err, scan.ErrNoDB):
		return scanapi.CodeNoDatabase, http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return scanapi.CodeScanFailed, http.StatusGatewayTimeout
	}
	return scanapi.CodeScanFailed, http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(scanapi.ErrorResponse{Code: code, Message: msg})
}
