package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/cairn-platform/cairn/dataplane/ota/delta"
)

// tooLargeSuffix marks a (from, to) pair whose delta is not worth serving.
const tooLargeSuffix = ".toolarge"

// errDeltaTooLarge: the delta is larger than MaxDeltaRatio of the image (or
// an image exceeds delta.MaxImageBytes).
var errDeltaTooLarge = errors.New("delta not smaller than the image")

func deltaName(from, to string) string { return from + "-" + to }

func (s *Server) serveDelta(w http.ResponseWriter, r *http.Request, req request) {
	from, to := r.PathValue("from"), r.PathValue("to")
	if !validSHA256(from) || !validSHA256(to) {
		httpError(w, http.StatusBadRequest, "from and to must be lower-case hex sha256 digests")
		return
	}
	if from == to {
		httpError(w, http.StatusBadRequest, "from and to are the same image")
		return
	}
	ctx := r.Context()
	name := deltaName(from, to)
	file := filepath.Join(s.deltasDir, name)
	defer s.cache.pin(s.imagePath(from), s.imagePath(to), file)()
	// Both images must resolve in the request's namespace, even when the
	// delta is cached (or known to be too large); they are only downloaded
	// for a build. The pin keeps a cached delta from being evicted, and
	// markers are never removed, so the state cannot change under us except
	// from "missing" to "built" or "too large".
	build := errors.Is(s.deltaState(from, to), os.ErrNotExist)
	if err := s.ensureImage(ctx, req.ns, to, -1, build); err != nil {
		s.imageError(w, err, req, to, "image")
		return
	}
	if err := s.ensureImage(ctx, req.ns, from, -1, build); err != nil {
		s.imageError(w, err, req, from, "base")
		return
	}
	if err := s.ensureDelta(ctx, from, to); err != nil {
		switch {
		case errors.Is(err, errDeltaTooLarge):
			httpError(w, http.StatusNotFound, errDeltaTooLarge.Error())
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			httpError(w, http.StatusServiceUnavailable, "timed out")
		default:
			s.log.Error(err, "building delta", "namespace", req.ns, "repo", req.repo, "from", from, "to", to)
			httpError(w, http.StatusInternalServerError, "delta build failed")
		}
		return
	}
	s.serveFile(w, r, file, `"`+name+`"`)
}

// ensureDelta makes sure deltas/<from>-<to> exists; it returns
// errDeltaTooLarge when the pair is marked as not worth a delta. Concurrent
// calls for one pair build once; builds are limited to DeltaBuilds at a time.
func (s *Server) ensureDelta(ctx context.Context, from, to string) error {
	if err := s.deltaState(from, to); err == nil || errors.Is(err, errDeltaTooLarge) {
		return err
	}
	ch := s.builds.DoChan(deltaName(from, to), func() (any, error) {
		return nil, s.buildDelta(from, to)
	})
	select {
	case <-ctx.Done():
		return ctx.Err()
	case res := <-ch:
		return res.Err
	}
}

// deltaState returns nil if the delta is cached, errDeltaTooLarge if the pair
// is marked, and os.ErrNotExist otherwise.
func (s *Server) deltaState(from, to string) error {
	file := filepath.Join(s.deltasDir, deltaName(from, to))
	if _, err := os.Stat(file); err == nil {
		return nil
	}
	if _, err := os.Stat(file + tooLargeSuffix); err == nil {
		return errDeltaTooLarge
	}
	return os.ErrNotExist
}

// buildDelta computes and stores the delta, or the too-large marker. It runs
// detached from any request, so a build is never wasted on a disconnect.
func (s *Server) buildDelta(from, to string) (err error) {
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	// A build that finished just before this flight started.
	if err := s.deltaState(from, to); err == nil || errors.Is(err, errDeltaTooLarge) {
		return err
	}
	result := "failed"
	defer func() {
		s.m.deltaBuilds.WithLabelValues(result).Inc()
	}()
	name := deltaName(from, to)
	oldInfo, err1 := os.Stat(s.imagePath(from))
	newInfo, err2 := os.Stat(s.imagePath(to))
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	if oldInfo.Size() > delta.MaxImageBytes || newInfo.Size() > delta.MaxImageBytes {
		result = "too_large"
		s.markTooLarge(name)
		s.log.Info("images too large for a delta", "from", from, "to", to)
		return errDeltaTooLarge
	}
	old, err := os.ReadFile(s.imagePath(from))
	if err != nil {
		return err
	}
	img, err := os.ReadFile(s.imagePath(to))
	if err != nil {
		return err
	}
	start := s.now()
	d, err := s.createDelta(old, img)
	elapsed := s.now().Sub(start)
	s.m.deltaSeconds.Observe(elapsed.Seconds())
	if err != nil {
		return fmt.Errorf("delta %s: %w", name, err)
	}
	if float64(len(d)) > s.cfg.MaxDeltaRatio*float64(len(img)) {
		result = "too_large"
		s.markTooLarge(name)
		s.log.Info("delta not worth it", "from", from, "to", to, "deltaBytes", len(d), "imageBytes", len(img), "duration", elapsed)
		return errDeltaTooLarge
	}
	n, err := s.writeAtomic(s.deltasDir, name, func(w io.Writer) (int64, error) {
		return io.Copy(w, bytes.NewReader(d))
	})
	if err != nil {
		return fmt.Errorf("storing delta %s: %w", name, err)
	}
	result = "built"
	s.log.Info("built delta", "from", from, "to", to, "deltaBytes", n, "duration", elapsed)
	s.cache.add(filepath.Join(s.deltasDir, name), n)
	return nil
}

// markTooLarge remembers that the pair is not worth a delta. Failing to
// write the marker only costs a rebuild.
func (s *Server) markTooLarge(name string) {
	if _, err := s.writeAtomic(s.deltasDir, name+tooLargeSuffix, func(io.Writer) (int64, error) { return 0, nil }); err != nil {
		s.log.Error(err, "writing delta marker", "delta", name)
	}
}
