package authz

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func wantCached(t *testing.T, c *lru[string, int], key string, want int) {
	t.Helper()
	got, ok := c.get(key)
	if !ok || got != want {
		t.Fatalf("get(%q) = %d, %v; want %d, true", key, got, ok, want)
	}
}

func wantMissing(t *testing.T, c *lru[string, int], key string) {
	t.Helper()
	if got, ok := c.get(key); ok {
		t.Fatalf("get(%q) = %d, want a miss", key, got)
	}
}

func TestLRUGetPut(t *testing.T) {
	clock := newFakeClock()
	c := newLRU[string, int](4, clock.Now)
	wantMissing(t, c, "a")
	c.put("a", 1, clock.Now().Add(time.Minute))
	wantCached(t, c, "a", 1)
	c.put("a", 2, clock.Now().Add(time.Minute))
	wantCached(t, c, "a", 2)
	if c.len() != 1 {
		t.Fatalf("len = %d after updating one key, want 1", c.len())
	}
}

func TestLRUExpiry(t *testing.T) {
	clock := newFakeClock()
	c := newLRU[string, int](4, clock.Now)
	c.put("a", 1, clock.Now().Add(10*time.Second))
	clock.Advance(10*time.Second - time.Nanosecond)
	wantCached(t, c, "a", 1)
	clock.Advance(time.Nanosecond)
	wantMissing(t, c, "a")
	if c.len() != 0 {
		t.Fatalf("len = %d, want the expired entry dropped", c.len())
	}
}

func TestLRUPutExtendsExpiry(t *testing.T) {
	clock := newFakeClock()
	c := newLRU[string, int](4, clock.Now)
	c.put("a", 1, clock.Now().Add(time.Second))
	c.put("a", 1, clock.Now().Add(time.Minute))
	clock.Advance(30 * time.Second)
	wantCached(t, c, "a", 1)
}

func TestLRUDoesNotStoreExpiredValues(t *testing.T) {
	clock := newFakeClock()
	c := newLRU[string, int](4, clock.Now)
	c.put("now", 1, clock.Now())
	c.put("past", 1, clock.Now().Add(-time.Second))
	if c.len() != 0 {
		t.Fatalf("len = %d, want expired values not stored", c.len())
	}
}

func TestLRUEvictsLeastRecentlyUsed(t *testing.T) {
	clock := newFakeClock()
	c := newLRU[string, int](2, clock.Now)
	later := clock.Now().Add(time.Minute)
	c.put("a", 1, later)
	c.put("b", 2, later)
	wantCached(t, c, "a", 1) // a is now the most recently used
	c.put("c", 3, later)
	wantMissing(t, c, "b")
	wantCached(t, c, "a", 1)
	wantCached(t, c, "c", 3)
	c.put("b", 2, later) // a was used before c: a goes
	wantMissing(t, c, "a")
	if c.len() != 2 {
		t.Fatalf("len = %d, want 2", c.len())
	}
}

func TestLRUUpdateCountsAsUse(t *testing.T) {
	clock := newFakeClock()
	c := newLRU[string, int](2, clock.Now)
	later := clock.Now().Add(time.Minute)
	c.put("a", 1, later)
	c.put("b", 2, later)
	c.put("a", 10, later)
	c.put("c", 3, later)
	wantMissing(t, c, "b")
	wantCached(t, c, "a", 10)
}

func TestLRUSizeIsAtLeastOne(t *testing.T) {
	clock := newFakeClock()
	c := newLRU[string, int](0, clock.Now)
	c.put("a", 1, clock.Now().Add(time.Minute))
	wantCached(t, c, "a", 1)
	c.put("b", 2, clock.Now().Add(time.Minute))
	wantMissing(t, c, "a")
}

func TestLRUConcurrentUseStaysBounded(t *testing.T) {
	clock := newFakeClock()
	c := newLRU[string, int](50, clock.Now)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				key := fmt.Sprint(g, "/", i%80)
				c.put(key, i, clock.Now().Add(time.Minute))
				if v, ok := c.get(key); ok && v != i {
					t.Errorf("get(%q) = %d, want %d: only this goroutine writes the key", key, v, i)
				}
			}
		})
	}
	wg.Wait()
	if n := c.len(); n != 50 {
		t.Fatalf("len = %d, want the bound of 50", n)
	}
}
