package server

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// lru tracks the cached images and deltas for MaxCacheBytes. Without a cap it
// only keeps the cache_bytes gauge.
type lru struct {
	s     *Server
	mu    sync.Mutex
	total int64
	files map[string]*lruEntry // full path → entry
	pins  map[string]int       // full path → requests using it
}

type lruEntry struct {
	size int64
	used time.Time
}

func newLRU(s *Server) *lru {
	return &lru{s: s, files: map[string]*lruEntry{}, pins: map[string]int{}}
}

// scan registers the files already in the cache directories, using their
// modification times as last use.
func (c *lru) scan() error {
	for _, dir := range []string{c.s.imagesDir, c.s.deltasDir} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			name := e.Name()
			if !e.Type().IsRegular() || strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, tooLargeSuffix) {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue
			}
			c.mu.Lock()
			c.files[filepath.Join(dir, name)] = &lruEntry{size: fi.Size(), used: fi.ModTime()}
			c.total += fi.Size()
			c.mu.Unlock()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evictLocked("")
	return nil
}

// add registers a new cache file and evicts others if the cache is over its cap.
func (c *lru) add(path string, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.files[path]; ok {
		c.total -= e.size
	}
	c.files[path] = &lruEntry{size: size, used: c.s.now()}
	c.total += size
	c.evictLocked(path)
}

// pin keeps path (which need not exist yet) from being evicted until the
// returned function is called; it also counts as a use.
func (c *lru) pin(paths ...string) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range paths {
		c.pins[p]++
		if e, ok := c.files[p]; ok {
			e.used = c.s.now()
		}
	}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range paths {
			if c.pins[p]--; c.pins[p] <= 0 {
				delete(c.pins, p)
			}
			if e, ok := c.files[p]; ok {
				e.used = c.s.now()
			}
		}
	}
}

// evictLocked removes least recently used, unpinned files other than
// keep until the cache fits MaxCacheBytes.
func (c *lru) evictLocked(keep string) {
	limit := c.s.cfg.MaxCacheBytes
	for limit > 0 && c.total > limit {
		var victim string
		var ve *lruEntry
		for p, e := range c.files {
			if p == keep || c.pins[p] > 0 {
				continue
			}
			if ve == nil || e.used.Before(ve.used) {
				victim, ve = p, e
			}
		}
		if ve == nil {
			break
		}
		if err := os.Remove(victim); err != nil && !os.IsNotExist(err) {
			c.s.log.Error(err, "evicting cache file", "file", filepath.Base(victim))
		}
		delete(c.files, victim)
		c.total -= ve.size
		c.s.m.cacheEvictions.Inc()
		c.s.log.V(1).Info("evicted cache file", "file", filepath.Base(victim), "bytes", ve.size)
	}
	c.s.m.cacheBytes.Set(float64(c.total))
}
