package apply

import (
	"crypto/sha256"
	"slices"
	"sync"
)

// DefaultMemoLimit is the number of objects an Applier remembers when
// MemoLimit is zero: enough for many large sources, a few tens of MB at most.
const DefaultMemoLimit = 100_000

// The memo lets a resync skip the dry run of objects nothing happened to.
//
// An entry says: this field manager applied an object with this content hash
// and the server answered with this resourceVersion (or a later dry run
// showed that applying it to the object at this resourceVersion changes
// nothing). The API server gives an object a new resourceVersion on every
// write, whoever makes it: another field manager, kubectl edit, a controller
// updating status, a delete and re-create (resourceVersions never repeat for
// a key). So when the live resourceVersion still equals the entry's and the
// desired content hashes the same, the live object is exactly what applying
// the desired object produced, and applying it again would change nothing:
// the object is Unchanged without reading or dry-running it. Any write in the
// cluster (drift) or change in the source misses the memo, and the object
// goes through the full path, so drift is still detected and corrected.
//
// What a hit skips is the re-validation of an object already accepted: if
// the rules changed in between (a CRD of the same set changed, see
// distrustChangedCRDs; or an admission policy changed) the object is only
// checked again once it or its source changes. The memo lives in memory: a
// restarted manager starts empty and takes the full path once.
//
// An entry is a fact about the server that never becomes false, only
// useless, so forgetting entries is always safe; they are forgotten to bound
// memory: when an object leaves the set of its field manager (it is in the
// previous inventory but no longer in the source), and least recently used
// entries beyond the limit.
type memo struct {
	mu      sync.Mutex
	entries map[memoKey]*memoEntry
	// clock counts Apply calls, to find the least recently used entries.
	clock uint64
}

// memoKey is per field manager and object: several sources applied through
// one Applier (GitRepos sharing an identity) cannot own the same object, so
// their entries never collide, even under one field manager.
type memoKey struct {
	fieldManager string
	object       objectKey
}

type memoEntry struct {
	hash            [sha256.Size]byte
	resourceVersion string
	used            uint64
}

// memoUpdate is what one Apply learned about one object.
type memoUpdate struct {
	key             memoKey
	hash            [sha256.Size]byte
	resourceVersion string
}

// hit reports whether the object at resourceVersion is what applying
// content with this hash produced.
func (m *memo) hit(key memoKey, hash [sha256.Size]byte, resourceVersion string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	return ok && resourceVersion != "" && e.resourceVersion == resourceVersion && e.hash == hash
}

// update records what one Apply learned, marks the entries it hit as used,
// forgets the objects that left the set, and evicts the least recently used entries beyond limit (negative:
// remember nothing).
func (m *memo) update(updates []memoUpdate, touched, forget []memoKey, limit int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if limit < 0 {
		m.entries = nil
		return
	}
	if limit == 0 {
		limit = DefaultMemoLimit
	}
	if m.entries == nil {
		m.entries = map[memoKey]*memoEntry{}
	}
	m.clock++
	for _, k := range forget {
		delete(m.entries, k)
	}
	for _, k := range touched {
		if e, ok := m.entries[k]; ok {
			e.used = m.clock
		}
	}
	for _, u := range updates {
		m.entries[u.key] = &memoEntry{hash: u.hash, resourceVersion: u.resourceVersion, used: m.clock}
	}
	m.evict(limit)
}

// evict drops the least recently used entries until at most limit remain.
// Sorting is fine: it only happens when the limit is reached, and then drops
// a tenth of the entries so it does not happen on every Apply.
func (m *memo) evict(limit int) {
	if len(m.entries) <= limit {
		return
	}
	type aged struct {
		key  memoKey
		used uint64
	}
	all := make([]aged, 0, len(m.entries))
	for k, e := range m.entries {
		all = append(all, aged{k, e.used})
	}
	slices.SortFunc(all, func(x, y aged) int {
		switch {
		case x.used < y.used:
			return -1
		case x.used > y.used:
			return 1
		}
		return 0
	})
	keep := limit - limit/10
	for _, a := range all[:len(all)-keep] {
		delete(m.entries, a.key)
	}
}

// len is the number of entries, for tests.
func (m *memo) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
