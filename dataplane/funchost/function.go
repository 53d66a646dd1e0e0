package funchost

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/tetratelabs/wazero"
	"go.opentelemetry.io/otel/trace"
)

// Request is what a guest sees of an HTTP request.
type Request struct {
	Method string
	// Path includes the query, as in a request line: "/a?b=c".
	Path   string
	Header http.Header
	Body   []byte
}

// Response is what a guest returned.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Function is a loaded module and its pool of instances. Its methods are
// safe for concurrent use.
type Function struct {
	name        string
	metrics     *metrics
	invocations functionMetrics
	tracer      trace.Tracer
	cfg         Config
	compiled    wazero.CompiledModule
	compileTime time.Duration
	pool        *pool
	command     *commandRunner // nil for reactors
	log         logr.Logger

	closeOnce sync.Once
	closeErr  error
}

// CompileTime is how long compiling took, including reading the cache.
func (f *Function) CompileTime() time.Duration { return f.compileTime }

// Instances is the number of live instances, busy or idle.
func (f *Function) Instances() int { return f.pool.size() }

// Invoke runs one request within the Function's timeout, in a span that is
// a child of the one in ctx, and counts it in the Host's metrics.
func (f *Function) Invoke(ctx context.Context, req Request) (Response, error) {
	start := time.Now()
	ctx, span := f.startInvokeSpan(ctx)
	resp, err := f.invoke(ctx, req)
	res := result(err)
	f.invocations.observe(res, time.Since(start))
	endInvokeSpan(span, res, err)
	return resp, err
}

func (f *Function) invoke(ctx context.Context, req Request) (Response, error) {
	if int64(len(req.Body)) > f.cfg.MaxRequestBytes {
		return Response{}, fmt.Errorf("%w: %d bytes exceed the limit of %d", ErrRequestTooLarge, len(req.Body), f.cfg.MaxRequestBytes)
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	in, err := f.pool.get(ctx)
	if err != nil {
		return Response{}, f.classify(ctx, err)
	}
	if f.command != nil {
		resp, err := f.command.run(ctx, &req)
		if putErr := f.pool.put(ctx, in); putErr != nil {
			f.log.Error(putErr, "releasing a command slot")
		}
		if err != nil {
			return Response{}, f.classifyCommand(ctx, err)
		}
		return resp, nil
	}
	resp, err := in.serve(ctx, &req, f.cfg.MaxResponseBytes, f.log)
	if err != nil && !errors.Is(err, ErrResponseTooLarge) {
		f.replace(ctx, in, err)
		return Response{}, f.classify(ctx, err)
	}
	// The response is complete: failing to recycle the instance is the
	// host's problem, not the caller's.
	if putErr := f.pool.put(ctx, in); putErr != nil {
		f.log.Error(putErr, "returning instance to the pool")
	}
	return resp, err
}

// replace discards a poisoned instance and restores the pool's minimum. It
// runs on the request's goroutine so the pool is whole before the caller
// retries, with a fresh deadline since the request's may have passed.
func (f *Function) replace(ctx context.Context, in *instance, cause error) {
	f.log.Info("discarding instance", "reason", cause.Error())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.cfg.Timeout)
	defer cancel()
	if err := f.pool.discard(ctx, in); err != nil {
		f.log.Error(err, "discarding instance")
	}
	if err := f.pool.fill(ctx); err != nil {
		f.log.Error(err, "replacing instance")
	}
}

// classify tells a deadline from a guest failure: wazero reports both as
// errors of the call.
func (f *Function) classify(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, ErrClosed):
		return err
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%w after %s: %w", ErrTimeout, f.cfg.Timeout, err)
	case ctx.Err() != nil:
		return fmt.Errorf("invocation canceled: %w", err)
	default:
		return fmt.Errorf("%w: %w", ErrTrap, err)
	}
}

// warm creates the pool's first instances; one at least, to check the
// module links and initializes.
func (f *Function) warm(ctx context.Context) error {
	in, err := f.pool.get(ctx)
	if err != nil {
		return err
	}
	if err := f.pool.put(ctx, in); err != nil {
		return err
	}
	return f.pool.fill(ctx)
}

// Close discards the Function's instances and compiled code. Call it once no
// request is in flight; later requests fail with ErrClosed.
// Closing twice is harmless; closing the compiled module twice is not, as
// wazero counts its references across Functions loaded from the same bytes.
func (f *Function) Close(ctx context.Context) error {
	f.closeOnce.Do(func() {
		f.metrics.closed(f)
		f.closeErr = errors.Join(f.pool.close(ctx), f.compiled.Close(ctx))
	})
	return f.closeErr
}
