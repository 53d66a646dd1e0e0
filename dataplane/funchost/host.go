package funchost

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Options configure a Host.
type Options struct {
	// CacheDir holds compiled modules across processes; empty keeps them in
	// memory only.
	CacheDir string
	// Logger receives guest log lines and instance failures.
	Logger logr.Logger
}

// Host runs Functions in one shared wazero runtime. Its methods are safe for
// concurrent use.
type Host struct {
	runtime wazero.Runtime
	cache   wazero.CompilationCache
	log     logr.Logger
}

// New starts a Host with the compiler engine, the host's imports and WASI.
func New(ctx context.Context, opts Options) (*Host, error) {
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
	h := &Host{runtime: wazero.NewRuntimeWithConfig(ctx, cfg), cache: cache, log: opts.Logger}
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
