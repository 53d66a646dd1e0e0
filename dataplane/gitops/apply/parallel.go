package apply

import (
	"sync"
	"sync/atomic"
)

// DefaultConcurrency is used when Options.Concurrency is zero or negative.
// The API server handles many requests at once over one HTTP/2 connection;
// what bounds an Apply is the client's rate limit, so a handful of requests
// in flight is enough to use it fully without bursting the server.
const DefaultConcurrency = 16

// forEach calls fn(i) for every i in [0, n), at most limit at a time, and
// returns when all calls have returned. fn must only write state owned by i,
// so results land in per-index slots and stay deterministic whatever the
// scheduling.
func forEach(n, limit int, fn func(i int)) {
	if limit < 1 {
		limit = 1
	}
	limit = min(limit, n)
	if limit == 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range limit {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// concurrency is opts.Concurrency with its default.
func concurrency(opts Options) int {
	if opts.Concurrency <= 0 {
		return DefaultConcurrency
	}
	return opts.Concurrency
}
