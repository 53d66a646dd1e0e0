package funchost

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
)

// Load compiles a module, checks it implements the reactor ABI and
// pre-instantiates its pool: at least one instance, which proves the module
// links and initializes. A Command module is only checked: it runs per
// request. name identifies the Function in logs.
func (h *Host) Load(ctx context.Context, name string, wasm []byte, cfg Config) (*Function, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("loading function %q: %w", name, err)
	}
	if err := checkHeader(wasm); err != nil {
		return nil, fmt.Errorf("loading function %q: %w", name, err)
	}
	start := time.Now()
	compiled, err := h.runtime.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("compiling function %q: %w", name, err)
	}
	h.metrics.compile.Observe(time.Since(start).Seconds())
	f := &Function{
		name:        name,
		metrics:     h.metrics,
		tracer:      h.tracer,
		cfg:         cfg,
		compiled:    compiled,
		compileTime: time.Since(start),
		log:         h.log.WithValues("function", name),
	}
	check, create := checkABI, h.instantiator(compiled, cfg)
	if cfg.ABI == Command {
		check, create = checkCommand, commandSlot
		f.command = h.commandRunner(name, compiled, cfg)
	}
	if err := check(compiled, cfg.MemoryLimitPages); err != nil {
		return nil, errors.Join(fmt.Errorf("loading function %q: %w", name, err), compiled.Close(ctx))
	}
	f.pool = newPool(create, cfg.MinInstances, cfg.MaxInstances, cfg.Isolation == Pooled)
	if err := f.warm(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("loading function %q: %w", name, err), f.Close(ctx))
	}
	h.metrics.loaded(f)
	f.log.Info("loaded function", "compileTime", f.compileTime, "instances", f.Instances())
	return f, nil
}

// instantiator returns how the pool creates instances of a module.
func (h *Host) instantiator(compiled wazero.CompiledModule, cfg Config) func(context.Context) (*instance, error) {
	modCfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances of one module coexist
		WithStartFunctions(exportInitialize).
		WithSysWalltime().
		WithSysNanotime().
		// wazero's default source is deterministic: guests would share keys.
		WithRandSource(rand.Reader)
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		modCfg = modCfg.WithEnv(k, cfg.Env[k])
	}
	memory := cappedAllocator{limit: uint64(cfg.MemoryLimitPages) * pageSize}
	return func(ctx context.Context) (*instance, error) {
		// _initialize gets the bound of a request: a guest looping in it
		// must not hang Load.
		ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
		mod, err := h.runtime.InstantiateModule(experimental.WithMemoryAllocator(ctx, memory), compiled, modCfg)
		if err != nil {
			return nil, fmt.Errorf("instantiating: %w", err)
		}
		return newInstance(mod), nil
	}
}
