package gitops

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/cairn-platform/cairn/dataplane/gitops/source"
)

// checkoutCache keeps the last fetched revision of each GitRepo on disk, so
// a resync of the same commit (every interval, to correct drift) re-renders
// it without fetching. Only one checkout per GitRepo is kept; memory holds
// nothing but the paths. After a restart the cache is empty and the first
// sync fetches again (shallow, so cheap).
type checkoutCache struct {
	// root holds one directory per GitRepo UID; default os.TempDir().
	root string

	mu      sync.Mutex
	entries map[types.UID]checkout
}

type checkout struct {
	generation int64
	artifact   source.Artifact
}

// get returns the cached checkout of commit for this generation of the
// GitRepo (another generation may select another ref or path).
func (c *checkoutCache) get(uid types.UID, generation int64, commit string) (source.Artifact, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[uid]
	if !ok || e.generation != generation || e.artifact.Commit != commit {
		return source.Artifact{}, false
	}
	if _, err := os.Stat(e.artifact.Dir); err != nil {
		return source.Artifact{}, false // cleaned up under us (tmpreaper)
	}
	return e.artifact, true
}

// fetch checks req's revision out into a new directory and makes it the
// GitRepo's checkout, removing the previous one. The controller never
// reconciles one GitRepo twice at once, so only the map needs the lock.
func (c *checkoutCache) fetch(ctx context.Context, uid types.UID, generation int64, req source.Request) (source.Artifact, error) {
	parent := filepath.Join(c.dir(), string(uid))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return source.Artifact{}, fmt.Errorf("creating checkout directory: %w", err)
	}
	dir, err := os.MkdirTemp(parent, "rev-")
	if err != nil {
		return source.Artifact{}, fmt.Errorf("creating checkout directory: %w", err)
	}
	req.Dir = dir
	art, err := source.Fetch(ctx, req)
	if err != nil {
		_ = os.RemoveAll(dir)
		return source.Artifact{}, err
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[types.UID]checkout{}
	}
	c.entries[uid] = checkout{generation: generation, artifact: art}
	c.mu.Unlock()
	// Remove every other revision of this GitRepo, also those a previous
	// run of the manager left behind.
	if entries, err := os.ReadDir(parent); err == nil {
		for _, e := range entries {
			if p := filepath.Join(parent, e.Name()); p != art.Dir {
				_ = os.RemoveAll(p)
			}
		}
	}
	return art, nil
}

// drop forgets the GitRepo's checkout and removes it from disk.
func (c *checkoutCache) drop(uid types.UID) {
	c.mu.Lock()
	delete(c.entries, uid)
	c.mu.Unlock()
	_ = os.RemoveAll(filepath.Join(c.dir(), string(uid)))
}

func (c *checkoutCache) dir() string {
	if c.root != "" {
		return c.root
	}
	return filepath.Join(os.TempDir(), "cairn-gitops")
}
