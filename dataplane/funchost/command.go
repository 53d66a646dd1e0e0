package funchost

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/net/http/httpguts"
)

// ABI is the interface between the host and a guest.
type ABI int

const (
	// Reactor is the Cairn HTTP reactor ABI v1: instances serve many
	// requests through cairn_handle.
	Reactor ABI = iota
	// Command runs a WASI program (_start) once per request: stdin is the
	// request body and stdout the response body.
	Command
)

const (
	exportStart = "_start"
	// maxStderrBytes bounds what one command run may log through stderr.
	maxStderrBytes = 64 << 10
	// maxStderrLine bounds one logged stderr line.
	maxStderrLine = 4 << 10
)

// ErrExit means a command exited with a non-zero code. Errors wrapping it are
// *ExitError and also match ErrTrap.
var ErrExit = errors.New("function exited with a non-zero code")

// ExitError is the exit code of a failed command.
type ExitError struct{ Code uint32 }

func (e *ExitError) Error() string { return fmt.Sprintf("%s: exit code %d", ErrExit, e.Code) }

// Is matches ErrExit and ErrTrap.
func (e *ExitError) Is(target error) bool { return target == ErrExit || target == ErrTrap }

// checkCommand checks a module is a WASI command within the memory limit.
func checkCommand(m wazero.CompiledModule, limitPages uint32) error {
	var errs []error
	mem, ok := m.ExportedMemories()[exportMemory]
	switch {
	case !ok:
		errs = append(errs, fmt.Errorf("missing export %q (memory)", exportMemory))
	case mem.Min() > limitPages:
		errs = append(errs, fmt.Errorf("memory starts at %d pages, over the limit of %d", mem.Min(), limitPages))
	}
	def, ok := m.ExportedFunctions()[exportStart]
	switch {
	case !ok:
		errs = append(errs, fmt.Errorf("missing export %q (func ())", exportStart))
	case len(def.ParamTypes()) > 0 || len(def.ResultTypes()) > 0:
		errs = append(errs, fmt.Errorf("export %q must take and return nothing", exportStart))
	}
	// Only WASI links: the "cairn" imports serve reactors' requests.
	for _, imp := range m.ImportedFunctions() {
		if mod, name, _ := imp.Import(); mod != wasi_snapshot_preview1.ModuleName {
			errs = append(errs, fmt.Errorf("imports %q %q: commands may import only %q", mod, name, wasi_snapshot_preview1.ModuleName))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("module is not a WASI command: %w", err)
	}
	return nil
}

// commandSlot stands for a running command in the pool, which then only
// bounds how many run at once.
func commandSlot(context.Context) (*instance, error) { return &instance{}, nil }

// commandRunner instantiates a command for each request.
type commandRunner struct {
	runtime  wazero.Runtime
	compiled wazero.CompiledModule
	cfg      Config
	name     string
	memory   cappedAllocator
	log      logr.Logger
}

func (h *Host) commandRunner(name string, compiled wazero.CompiledModule, cfg Config) *commandRunner {
	return &commandRunner{
		runtime: h.runtime, compiled: compiled, cfg: cfg, name: name,
		memory: cappedAllocator{limit: uint64(cfg.MemoryLimitPages) * pageSize},
		log:    h.log.WithValues("function", name),
	}
}

// run executes the command on a fresh instance, which is gone when it
// returns. ctx carries the invocation's deadline.
func (c *commandRunner) run(ctx context.Context, req *Request) (Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stdout := &boundedBuffer{limit: c.cfg.MaxResponseBytes, overflow: cancel}
	stderr := &lineLogger{log: c.log, budget: maxStderrBytes}
	modCfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: concurrent runs coexist
		WithStartFunctions(exportStart).
		WithArgs(c.name).
		WithStdin(bytes.NewReader(req.Body)).
		WithStdout(stdout).
		WithStderr(stderr).
		WithSysWalltime().
		WithSysNanotime().
		// wazero's default source is deterministic: guests would share keys.
		WithRandSource(rand.Reader)
	env := commandEnv(c.cfg.Env, req)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		modCfg = modCfg.WithEnv(k, env[k])
	}
	mod, err := c.runtime.InstantiateModule(experimental.WithMemoryAllocator(ctx, c.memory), c.compiled, modCfg)
	stderr.flush()
	if mod != nil {
		// Closed already unless the command returned without proc_exit.
		_ = mod.Close(context.WithoutCancel(ctx))
	}
	if stdout.exceeded() {
		return Response{}, fmt.Errorf("%w: more than %d bytes written to stdout", ErrResponseTooLarge, c.cfg.MaxResponseBytes)
	}
	if err != nil {
		return Response{}, err
	}
	return Response{Status: http.StatusOK, Header: http.Header{}, Body: stdout.bytes()}, nil
}

// classifyCommand tells a deadline from an exit code and a trap.
func (f *Function) classifyCommand(ctx context.Context, err error) error {
	var exit *sys.ExitError
	switch {
	case errors.Is(err, ErrResponseTooLarge), errors.Is(err, ErrClosed):
		return err
	case ctx.Err() != nil:
		return f.classify(ctx, err)
	case errors.As(err, &exit):
		f.log.Info("command exited", "code", exit.ExitCode())
		return &ExitError{Code: exit.ExitCode()}
	default:
		return fmt.Errorf("%w: %w", ErrTrap, err)
	}
}

// commandEnv is the granted environment plus the request's metadata, which
// wins over granted variables of the same name.
func commandEnv(granted map[string]string, req *Request) map[string]string {
	env := maps.Clone(granted)
	if env == nil {
		env = map[string]string{}
	}
	for name, values := range req.Header {
		value := strings.Join(values, ", ")
		if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) || strings.ContainsRune(value, 0) {
			continue
		}
		env["CAIRN_HEADER_"+strings.ReplaceAll(strings.ToUpper(name), "-", "_")] = value
	}
	env["CAIRN_METHOD"] = req.Method
	env["CAIRN_PATH"] = req.Path
	return env
}

// boundedBuffer collects stdout up to limit bytes; past it, it stops the
// guest through overflow and fails its writes.
type boundedBuffer struct {
	limit    int64
	overflow func()

	mu   sync.Mutex
	buf  bytes.Buffer
	over bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.over || int64(b.buf.Len()+len(p)) > b.limit {
		b.over = true
		b.overflow()
		return 0, ErrResponseTooLarge
	}
	return b.buf.Write(p)
}

func (b *boundedBuffer) exceeded() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.over
}

func (b *boundedBuffer) bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// lineLogger logs stderr line by line, up to budget bytes in all.
type lineLogger struct {
	log    logr.Logger
	budget int

	mu      sync.Mutex
	line    []byte
	dropped bool
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		take := min(len(chunk), maxStderrLine-len(l.line), l.budget)
		l.line = append(l.line, chunk[:take]...)
		l.budget -= take
		if take < len(chunk) {
			l.dropped = true
		}
		if i < 0 {
			break
		}
		l.emit()
		p = p[i+1:]
	}
	return n, nil
}

func (l *lineLogger) emit() {
	if len(l.line) > 0 {
		l.log.Info("guest stderr", "message", string(l.line))
	}
	l.line = l.line[:0]
}

// flush logs an unterminated last line and whether output was dropped.
func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.emit()
	if l.dropped {
		l.log.Info("guest stderr truncated", "limitBytes", maxStderrBytes, "lineLimitBytes", maxStderrLine)
	}
}
