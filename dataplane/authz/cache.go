package authz

import (
	"container/list"
	"sync"
	"time"
)

// lru is a size-bounded, concurrency-safe cache whose entries also expire.
// Expired entries are dropped when looked up or when they reach the cold end
// of the list; the size bound holds either way.
type lru[K comparable, V any] struct {
	max int
	now func() time.Time

	mu    sync.Mutex
	order *list.List // of *lruEntry[K, V]; front is most recently used
	items map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key     K
	val     V
	expires time.Time
}

func newLRU[K comparable, V any](maxEntries int, now func() time.Time) *lru[K, V] {
	return &lru[K, V]{
		max:   max(maxEntries, 1),
		now:   now,
		order: list.New(),
		items: make(map[K]*list.Element),
	}
}

// get returns the live value for key.
func (c *lru[K, V]) get(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		var zero V
		return zero, false
	}
	e := el.Value.(*lruEntry[K, V])
	if !c.now().Before(e.expires) {
		c.remove(el)
		var zero V
		return zero, false
	}
	c.order.MoveToFront(el)
	return e.val, true
}

// put stores val until expires, evicting the least recently used entry when
// full. A value that is already expired is not stored (and replaces nothing).
func (c *lru[K, V]) put(key K, val V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.now().Before(expires) {
		return
	}
	if el, ok := c.items[key]; ok {
		e := el.Value.(*lruEntry[K, V])
		e.val, e.expires = val, expires
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&lruEntry[K, V]{key: key, val: val, expires: expires})
	for c.order.Len() > c.max {
		c.remove(c.order.Back())
	}
}

func (c *lru[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func (c *lru[K, V]) remove(el *list.Element) {
	c.order.Remove(el)
	delete(c.items, el.Value.(*lruEntry[K, V]).key)
}
