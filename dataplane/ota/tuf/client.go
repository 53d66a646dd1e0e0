package tuf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Size limits for fetched metadata (spec §5.3–5.6 asks for upper bounds).
const (
	maxRootBytes      = 512 << 10
	maxTimestampBytes = 16 << 10
	// maxMetaBytes bounds snapshot.json and targets.json when the referring
	// metadata does not record their length.
	maxMetaBytes = 4 << 20
	// maxRootRotations bounds the root chain walked by one Update, so a
	// malicious repository cannot keep a client busy forever.
	maxRootRotations = 256
)

// Client verifies repository metadata and keeps the trusted copies in a
// Store. It is safe for concurrent use; Target and Targets wait for a
// running Update.
type Client struct {
	store   Store
	fetcher Fetcher
	now     func() time.Time

	mu        sync.Mutex
	root      *Root
	timestamp *Timestamp
	snapshot  *Snapshot
	targets   *Targets
	raw       map[string][]byte // trusted file contents, for hash comparisons
}

// Bootstrap establishes first trust in rootJSON, which must be signed by a
// threshold of its own root keys. If store already trusts a root, Bootstrap
// leaves it alone: from then on only the root chain rotates trust.
func Bootstrap(store Store, rootJSON []byte) error {
	if _, err := loadSelfSignedRoot(RootFile, rootJSON); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	_, err := store.Load(RootFile)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("bootstrap: %w", err)
	}
	// Metadata left over from another trust anchor must not constrain this one.
	for _, name := range []string{TimestampFile, SnapshotFile, TargetsFile} {
		if err := store.Delete(name); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	if err := store.Save(RootFile, rootJSON); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

// loadSelfSignedRoot parses a root that must be signed by its own keys.
func loadSelfSignedRoot(name string, b []byte) (*Root, error) {
	signed, sigs, err := readEnvelope(name, b)
	if err != nil {
		return nil, err
	}
	var root Root
	if err := decodeSigned(name, signed, RoleRoot, &root); err != nil {
		return nil, err
	}
	if err := root.validate(name); err != nil {
		return nil, err
	}
	if err := verifySignatures(name, &root, RoleRoot, signed, sigs, ""); err != nil {
		return nil, err
	}
	return &root, nil
}

// NewClient returns a client trusting the root in store (see Bootstrap) and
// the timestamp, snapshot and targets metadata stored with it. now defaults
// to time.Now.
func NewClient(store Store, f Fetcher, now func() time.Time) (*Client, error) {
	if store == nil || f == nil {
		return nil, errorf(ErrInvalid, "tuf client needs a store and a fetcher")
	}
	if now == nil {
		now = time.Now
	}
	b, err := store.Load(RootFile)
	if err != nil {
		return nil, fmt.Errorf("no trusted root (bootstrap first): %w", err)
	}
	root, err := loadSelfSignedRoot("trusted "+RootFile, b)
	if err != nil {
		return nil, err
	}
	c := &Client{store: store, fetcher: f, now: now, root: root, raw: map[string][]byte{RootFile: b}}
	var (
		ts Timestamp
		sn Snapshot
		tg Targets
	)
	// Stored metadata must still verify under the trusted root. A copy that
	// does not (e.g. signed by a key rotated away before a crash) is
	// ignored: it would only serve the rollback checks.
	if ok, err := c.loadTrusted(TimestampFile, RoleTimestamp, &ts); err != nil {
		return nil, err
	} else if ok {
		c.timestamp = &ts
	}
	if ok, err := c.loadTrusted(SnapshotFile, RoleSnapshot, &sn); err != nil {
		return nil, err
	} else if ok {
		c.snapshot = &sn
	}
	if ok, err := c.loadTrusted(TargetsFile, RoleTargets, &tg); err != nil {
		return nil, err
	} else if ok {
		c.targets = &tg
	}
	return c, nil
}

func (c *Client) loadTrusted(name, role string, m metadata) (bool, error) {
	b, err := c.store.Load(name)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if verifyMetadata(name, b, role, c.root, m) != nil {
		return false, nil
	}
	c.raw[name] = b
	return true, nil
}

// Update refreshes the trusted metadata from the repository following the
// TUF client workflow: root chain, timestamp, snapshot, targets. Metadata is
// saved to the store only once verified; on error the trusted metadata that
// failed verification is left as it was.
func (c *Client) Update(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now() // one instant for the whole cycle (spec §5.1)
	if err := c.updateRoot(ctx, now); err != nil {
		return err
	}
	if err := c.updateTimestamp(ctx, now); err != nil {
		return err
	}
	if err := c.updateSnapshot(ctx, now); err != nil {
		return err
	}
	return c.updateTargets(ctx, now)
}

// updateRoot walks the root chain (spec §5.3).
func (c *Client) updateRoot(ctx context.Context, now time.Time) error {
	orig := c.root
	for range maxRootRotations {
		name := RootVersionFile(c.root.Version + 1)
		b, err := c.fetcher.Fetch(ctx, name, maxRootBytes)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return fmt.Errorf("fetching %s: %w", name, err)
		}
		root, err := verifyNextRoot(name, b, c.root)
		if err != nil {
			return err
		}
		if err := c.save(RootFile, b); err != nil {
			return err
		}
		c.root = root
	}
	// Fast-forward recovery (spec §5.3.11): metadata from rotated-away keys
	// may carry versions an attacker inflated; forget it so the rollback
	// checks compare against the new keys' metadata only. Done before the
	// expiry check so an expired root cannot skip it. Targets are forgotten
	// too when their keys rotate, for the defensive check in updateTargets.
	if rotated(orig, c.root, RoleTimestamp) || rotated(orig, c.root, RoleSnapshot) {
		if err := c.forget(TimestampFile, SnapshotFile); err != nil {
			return err
		}
		c.timestamp, c.snapshot = nil, nil
	}
	if rotated(orig, c.root, RoleTargets) {
		if err := c.forget(TargetsFile); err != nil {
			return err
		}
		c.targets = nil
	}
	return checkExpiry(RootFile, &c.root.Header, now)
}

func (c *Client) forget(names ...string) error {
	for _, name := range names {
		if err := c.store.Delete(name); err != nil {
			return err
		}
		delete(c.raw, name)
	}
	return nil
}

// verifyNextRoot checks that b is version trusted.Version+1 of root.json,
// signed by a threshold of both the trusted root's keys and its own.
func verifyNextRoot(name string, b []byte, trusted *Root) (*Root, error) {
	signed, sigs, err := readEnvelope(name, b)
	if err != nil {
		return nil, err
	}
	by := fmt.Sprintf("the keys of trusted root.json version %d", trusted.Version)
	if err := verifySignatures(name, trusted, RoleRoot, signed, sigs, by); err != nil {
		return nil, err
	}
	var root Root
	if err := decodeSigned(name, signed, RoleRoot, &root); err != nil {
		return nil, err
	}
	if err := root.validate(name); err != nil {
		return nil, err
	}
	if err := verifySignatures(name, &root, RoleRoot, signed, sigs, "its own keys"); err != nil {
		return nil, err
	}
	want := trusted.Version + 1
	switch {
	case root.Version < want:
		return nil, errorf(ErrRollback, "%s has version %d, want %d (rollback attack?)", name, root.Version, want)
	case root.Version > want:
		return nil, errorf(ErrInvalid, "%s has version %d, want %d", name, root.Version, want)
	}
	return &root, nil
}

// rotated reports whether role's keys or threshold differ between a and b.
func rotated(a, b *Root, role string) bool {
	keys := func(r *Root) []string {
		var out []string
		for _, id := range r.Roles[role].KeyIDs {
			out = append(out, strings.ToLower(r.Keys[id].Value.Public))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return a.Roles[role].Threshold != b.Roles[role].Threshold || !slices.Equal(keys(a), keys(b))
}

// updateTimestamp implements spec §5.4.
func (c *Client) updateTimestamp(ctx context.Context, now time.Time) error {
	b, err := c.fetcher.Fetch(ctx, TimestampFile, maxTimestampBytes)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", TimestampFile, err)
	}
	var ts Timestamp
	if err := verifyMetadata(TimestampFile, b, RoleTimestamp, c.root, &ts); err != nil {
		return err
	}
	snap, ok := ts.Meta[SnapshotFile]
	if !ok || snap.Version < 1 {
		return errorf(ErrInvalid, "%s version %d lists no valid %s", TimestampFile, ts.Version, SnapshotFile)
	}
	if old := c.timestamp; old != nil {
		if ts.Version < old.Version {
			return rollbackf(TimestampFile, ts.Version, old.Version)
		}
		if ts.Version == old.Version {
			// Same version: keep the trusted copy (spec §5.4.3.1); it must
			// still be fresh.
			return checkExpiry(TimestampFile, &old.Header, now)
		}
		if oldSnap := old.Meta[SnapshotFile]; snap.Version < oldSnap.Version {
			return errorf(ErrRollback, "%s version %d lists %s version %d, older than the trusted version %d (rollback attack?)",
				TimestampFile, ts.Version, SnapshotFile, snap.Version, oldSnap.Version)
		}
	}
	if err := checkExpiry(TimestampFile, &ts.Header, now); err != nil {
		return err
	}
	if err := c.save(TimestampFile, b); err != nil {
		return err
	}
	c.timestamp = &ts
	return nil
}

// updateSnapshot implements spec §5.5.
func (c *Client) updateSnapshot(ctx context.Context, now time.Time) error {
	meta := c.timestamp.Meta[SnapshotFile]
	if old := c.snapshot; old != nil && c.isCurrent(SnapshotFile, old.Version, meta) {
		return checkExpiry(SnapshotFile, &old.Header, now)
	}
	b, err := c.fetchMeta(ctx, SnapshotFile, meta, TimestampFile)
	if err != nil {
		return err
	}
	var sn Snapshot
	if err := verifyMetadata(SnapshotFile, b, RoleSnapshot, c.root, &sn); err != nil {
		return err
	}
	if sn.Version != meta.Version {
		return errorf(ErrMixAndMatch, "%s has version %d, %s says %d (mix-and-match attack?)",
			SnapshotFile, sn.Version, TimestampFile, meta.Version)
	}
	if old := c.snapshot; old != nil {
		for _, name := range slices.Sorted(maps.Keys(old.Meta)) {
			m, ok := sn.Meta[name]
			if !ok {
				return errorf(ErrRollback, "%s version %d no longer lists %s (rollback attack?)", SnapshotFile, sn.Version, name)
			}
			if oldVersion := old.Meta[name].Version; m.Version < oldVersion {
				return errorf(ErrRollback, "%s version %d lists %s version %d, older than the trusted version %d (rollback attack?)",
					SnapshotFile, sn.Version, name, m.Version, oldVersion)
			}
		}
	}
	if err := checkExpiry(SnapshotFile, &sn.Header, now); err != nil {
		return err
	}
	if err := c.save(SnapshotFile, b); err != nil {
		return err
	}
	c.snapshot = &sn
	return nil
}

// updateTargets implements spec §5.6 (without delegations).
func (c *Client) updateTargets(ctx context.Context, now time.Time) error {
	meta, ok := c.snapshot.Meta[TargetsFile]
	if !ok || meta.Version < 1 {
		return errorf(ErrInvalid, "%s version %d lists no valid %s", SnapshotFile, c.snapshot.Version, TargetsFile)
	}
	if old := c.targets; old != nil && c.isCurrent(TargetsFile, old.Version, meta) {
		return checkExpiry(TargetsFile, &old.Header, now)
	}
	b, err := c.fetchMeta(ctx, TargetsFile, meta, SnapshotFile)
	if err != nil {
		return err
	}
	var tg Targets
	if err := verifyMetadata(TargetsFile, b, RoleTargets, c.root, &tg); err != nil {
		return err
	}
	if tg.Version != meta.Version {
		return errorf(ErrMixAndMatch, "%s has version %d, %s says %d (mix-and-match attack?)",
			TargetsFile, tg.Version, SnapshotFile, meta.Version)
	}
	// Normally implied by the snapshot checks, but not after fast-forward
	// recovery dropped the trusted snapshot.
	if old := c.targets; old != nil && tg.Version < old.Version {
		return rollbackf(TargetsFile, tg.Version, old.Version)
	}
	if err := checkExpiry(TargetsFile, &tg.Header, now); err != nil {
		return err
	}
	if err := c.save(TargetsFile, b); err != nil {
		return err
	}
	c.targets = &tg
	return nil
}

// isCurrent reports whether the trusted copy of name is the one meta
// describes, so it need not be downloaded again.
func (c *Client) isCurrent(name string, version int64, meta MetaFile) bool {
	return version == meta.Version && checkMetaFile(name, c.raw[name], meta, "") == nil
}

// fetchMeta downloads name and checks it against the length and hashes that
// referrer recorded for it.
func (c *Client) fetchMeta(ctx context.Context, name string, meta MetaFile, referrer string) ([]byte, error) {
	limit := int64(maxMetaBytes)
	if meta.Length > 0 {
		limit = meta.Length
	}
	b, err := c.fetcher.Fetch(ctx, name, limit)
	if errors.Is(err, ErrTooLarge) && meta.Length > 0 {
		return nil, metaMismatchf("%s is longer than the %d bytes %s says (mix-and-match attack?)", name, meta.Length, referrer)
	}
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", name, err)
	}
	if err := checkMetaFile(name, b, meta, referrer); err != nil {
		return nil, err
	}
	return b, nil
}

func (c *Client) save(name string, b []byte) error {
	if err := c.store.Save(name, b); err != nil {
		return err
	}
	c.raw[name] = bytes.Clone(b)
	return nil
}

func rollbackf(name string, version, trusted int64) error {
	return errorf(ErrRollback, "%s version %d is older than the trusted version %d (rollback attack?)", name, version, trusted)
}

// Target returns the trusted description of path. Call Update first: it
// answers from the metadata trusted so far, and refuses it once expired.
func (c *Client) Target(path string) (TargetFile, error) {
	tg, err := c.trustedTargets()
	if err != nil {
		return TargetFile{}, err
	}
	t, ok := tg.Targets[path]
	if !ok {
		return TargetFile{}, errorf(ErrNotFound, "target %s is not in %s version %d", path, TargetsFile, tg.Version)
	}
	t = t.clone()
	t.Path = path
	return t, nil
}

// Targets returns all trusted targets by path, under the same rules as Target.
func (c *Client) Targets() (map[string]TargetFile, error) {
	tg, err := c.trustedTargets()
	if err != nil {
		return nil, err
	}
	out := make(map[string]TargetFile, len(tg.Targets))
	for path, t := range tg.Targets {
		t = t.clone()
		t.Path = path
		out[path] = t
	}
	return out, nil
}

func (c *Client) trustedTargets() (*Targets, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.targets == nil {
		return nil, errorf(ErrNotFound, "no trusted %s yet (update first)", TargetsFile)
	}
	if err := checkExpiry(TargetsFile, &c.targets.Header, c.now()); err != nil {
		return nil, err
	}
	return c.targets, nil
}

// RootVersion returns the version of the trusted root.
func (c *Client) RootVersion() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.root.Version
}
