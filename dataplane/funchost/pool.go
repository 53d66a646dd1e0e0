package funchost

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// pool bounds the instances of one Function. A slot token is held for every
// live instance, in use or idle, so at most cap(slots) exist at once.
type pool struct {
	create func(context.Context) (*instance, error)
	idle   chan *instance
	slots  chan struct{}
	min    int
	reuse  bool // false: every instance serves one request (PerRequest)

	mu     sync.Mutex // guards closed against concurrent put
	closed bool
}

func newPool(create func(context.Context) (*instance, error), minInstances, maxInstances int, reuse bool) *pool {
	return &pool{
		create: create,
		idle:   make(chan *instance, maxInstances),
		slots:  make(chan struct{}, maxInstances),
		min:    minInstances,
		reuse:  reuse,
	}
}

// get returns an idle instance, or a new one while under the bound, or waits
// for either until ctx is done.
func (p *pool) get(ctx context.Context) (*instance, error) {
	select {
	case in := <-p.idle:
		return in, nil
	default:
	}
	select {
	case in := <-p.idle:
		return in, nil
	case p.slots <- struct{}{}:
		return p.spawn(ctx)
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a free instance: %w", ctx.Err())
	}
}

// spawn instantiates into a slot the caller already holds.
func (p *pool) spawn(ctx context.Context) (*instance, error) {
	if p.isClosed() {
		<-p.slots
		return nil, ErrClosed
	}
	in, err := p.create(ctx)
	if err != nil {
		<-p.slots
		return nil, err
	}
	return in, nil
}

// put returns a healthy instance after a request.
func (p *pool) put(ctx context.Context, in *instance) error {
	p.mu.Lock()
	keep := p.reuse && !p.closed
	if keep {
		p.idle <- in // never blocks: idle holds at most cap(slots) instances
	}
	p.mu.Unlock()
	if keep {
		return nil
	}
	return p.release(ctx, in)
}

// discard drops an instance that must not serve again.
func (p *pool) discard(ctx context.Context, in *instance) error {
	return p.release(ctx, in)
}

func (p *pool) release(ctx context.Context, in *instance) error {
	err := in.close(ctx)
	<-p.slots
	return err
}

// fill instantiates idle instances up to the minimum.
func (p *pool) fill(ctx context.Context) error {
	for p.reuse && len(p.slots) < p.min {
		select {
		case p.slots <- struct{}{}:
		default:
			return nil // the bound was reached concurrently
		}
		in, err := p.spawn(ctx)
		if err != nil {
			return err
		}
		if err := p.put(ctx, in); err != nil {
			return err
		}
	}
	return nil
}

// size is the number of live instances.
func (p *pool) size() int { return len(p.slots) }

func (p *pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// close discards idle instances; instances in use are discarded when put.
func (p *pool) close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	var errs []error
	for {
		select {
		case in := <-p.idle:
			errs = append(errs, p.release(ctx, in))
		default:
			return errors.Join(errs...)
		}
	}
}
