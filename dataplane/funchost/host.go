package funchost

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// Options configure a Host.
type Options struct {
	// CacheDir holds compiled modules across processes; empty keeps them in
	// memory only.
	CacheDir string
	// Logger receives guest log lines and instance failures.
	Logger logr.Logger
	// Registerer receives the Host's metrics; nil registers them nowhere.
	// cairn_funchost_invocations_total{function,result} and
	// cairn_funchost_invocation_duration_seconds{function} count Invoke
	// calls, cairn_funchost_instances{function,state} reports pools (live,
	// idle) and cairn_funchost_compile_duration_seconds compilations.
	Registerer prometheus.Registerer
	// TracerProvider receives a "funchost.Invoke" span per invocation; nil
	// is the global one. Handler joins the trace of incoming W3C traceparent
	// headers with the global propagator (see internal/telemetry.Setup).
	TracerProvider trace.TracerProvider
}

// Host runs Functions in one shared wazero runtime. Its methods are safe for
// concurrent use.
type Host struct {
	runtime wazero.Runtime
	cache   wazero.CompilationCache
	log     logr.Logger
	metrics *metrics
	tracer  trace.Tracer
}

// New starts a Host with the compiler engine, the host's imports and WASI.
func New(ctx context.Context, opts Options) (*Host, error) {
	m := newMetrics()
	if opts.Registerer != nil {
		if err := m.register(opts.Registerer); err != nil {
			return nil, err
		}
	}
	tp := opts.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	cache := wazero.NewCompilationCache()
	if opts.CacheDir != "" {
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(opts.CacheDir); err != nil {
			return nil, fmt.Errorf("opening compilation cache %q: %w", opts.CacheDir, err)
		}
	}
	cfg := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(cache).
		// Deadlines stop running guests, including infinite loops.
		WithCloseOnContextDone(true)
	h := &Host{
		runtime: wazero.NewRuntimeWithConfig(ctx, cfg), cache: cache, log: opts.Logger,
		metrics: m, tracer: tp.Tracer(tracerName),
	}
	if err := h.instantiateImports(ctx); err != nil {
		return nil, errors.Join(err, h.Close(ctx))
	}
	return h, nil
}

func (h *Host) instantiateImports(ctx context.Context) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, h.runtime); err != nil {
		return fmt.Errorf("instantiating WASI: %w", err)
	}
	if _, err := cairnImports(h.runtime).Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiating %q imports: %w", importModule, err)
	}
	return nil
}

// Close stops every instance of every Function loaded by the Host.
func (h *Host) Close(ctx context.Context) error {
	return errors.Join(h.runtime.Close(ctx), h.cache.Close(ctx))
}
