package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

var (
	// errMismatch: the origin's bytes do not match the expected length or sha256.
	errMismatch = errors.New("image does not match its sha256 or length")
	// errOrigin: Fetch failed (other than ErrNotFound) or its stream broke.
	errOrigin = errors.New("image origin failed")
)

// imagePath returns the cache file of an image; sum must have passed validSHA256.
func (s *Server) imagePath(sum string) string { return filepath.Join(s.imagesDir, sum) }

func accessKey(ns, sum string) string { return ns + "/" + sum }

func (s *Server) hasAccess(ns, sum string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.access[accessKey(ns, sum)]
	return ok && s.now().Before(exp)
}

func (s *Server) grantAccess(ns, sum string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.access) > 4096 {
		for k, exp := range s.access {
			if !now.Before(exp) {
				delete(s.access, k)
			}
		}
	}
	s.access[accessKey(ns, sum)] = now.Add(accessTTL)
}

// ensureImage makes sure that namespace ns may read the image sum (Fetch
// resolved it in ns within accessTTL) and, if download is set, that it is
// cached. length is the expected size, or -1 when unknown.
func (s *Server) ensureImage(ctx context.Context, ns, sum string, length int64, download bool) error {
	fi, statErr := os.Stat(s.imagePath(sum))
	if (statErr == nil || !download) && s.hasAccess(ns, sum) {
		return checkLength(fi, sum, length)
	}
	key := "verify/" + accessKey(ns, sum)
	if download {
		key = "fetch/" + accessKey(ns, sum)
	}
	ch := s.fetches.DoChan(key, func() (any, error) {
		// Detached from the request: concurrent requests share this
		// download and one client going away must not abort it.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.FetchTimeout)
		defer cancel()
		return nil, s.fetch(fctx, ns, sum, length, download)
	})
	select {
	case <-ctx.Done():
		return ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return res.Err
		}
	}
	if !download {
		return nil
	}
	fi, err := os.Stat(s.imagePath(sum))
	if err != nil {
		return err
	}
	return checkLength(fi, sum, length)
}

// checkLength compares a cached image's size with the expected length (if
// known and the image is cached).
func checkLength(fi os.FileInfo, sum string, length int64) error {
	if fi != nil && length >= 0 && fi.Size() != length {
		return fmt.Errorf("%w: cached image %s has %d bytes, metadata says %d", errMismatch, sum, fi.Size(), length)
	}
	return nil
}

// fetch opens the image in namespace ns and, if download is set and it is not
// cached yet, streams it into the cache, verifying length and sha256. On
// success ns is granted access to the image.
func (s *Server) fetch(ctx context.Context, ns, sum string, length int64, download bool) error {
	rc, err := s.cfg.Fetch(ctx, ns, sum)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			s.m.cacheFetches.WithLabelValues("not_found").Inc()
			return err
		}
		s.m.cacheFetches.WithLabelValues("failed").Inc()
		return fmt.Errorf("%w: %w", errOrigin, err)
	}
	defer func() { _ = rc.Close() }()
	final := s.imagePath(sum)
	if _, err := os.Stat(final); err == nil || !download {
		// Cached (by another namespace or an earlier request) or not
		// needed: Fetch only proved that ns has the image.
		s.m.cacheFetches.WithLabelValues("verified").Inc()
		s.grantAccess(ns, sum)
		return nil
	}
	limit := length
	if limit < 0 {
		limit = maxUnknownImageBytes
	}
	n, err := s.writeAtomic(s.imagesDir, sum, func(w io.Writer) (int64, error) {
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(rc, limit+1))
		if err != nil {
			return n, fmt.Errorf("%w: reading image %s: %w", errOrigin, sum, err)
		}
		if n > limit || (length >= 0 && n != length) {
			return n, fmt.Errorf("%w: image %s has %d bytes, expected %d", errMismatch, sum, n, length)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != sum {
			return n, fmt.Errorf("%w: image has sha256 %s, expected %s", errMismatch, got, sum)
		}
		return n, nil
	})
	switch {
	case errors.Is(err, errMismatch):
		s.m.cacheFetches.WithLabelValues("mismatch").Inc()
		return err
	case err != nil:
		s.m.cacheFetches.WithLabelValues("failed").Inc()
		return err
	}
	s.m.cacheFetches.WithLabelValues("fetched").Inc()
	s.log.Info("cached image", "namespace", ns, "sha256", sum, "bytes", n)
	s.grantAccess(ns, sum)
	s.cache.add(final, n)
	return nil
}

// writeAtomic writes dir/name through a temporary file: fill writes the
// content, then the file is synced and renamed into place. Nothing is left
// behind on error.
func (s *Server) writeAtomic(dir, name string, fill func(io.Writer) (int64, error)) (int64, error) {
	f, err := os.CreateTemp(dir, name+".*.tmp")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	n, err := fill(f)
	if err != nil {
		return n, err
	}
	if err := f.Sync(); err != nil {
		return n, err
	}
	if err := f.Close(); err != nil {
		return n, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return n, err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return n, nil
}
