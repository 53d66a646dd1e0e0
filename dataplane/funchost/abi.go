package funchost

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Export names of the reactor ABI (see the package documentation).
const (
	exportMemory     = "memory"
	exportAlloc      = "cairn_alloc"
	exportHandle     = "cairn_handle"
	exportInitialize = "_initialize"
)

// wasmHeader is the magic number and version 1 of the binary format.
var wasmHeader = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

type signature struct{ params, results []api.ValueType }

var requiredFuncs = map[string]signature{
	exportAlloc:  {params: []api.ValueType{api.ValueTypeI32}, results: []api.ValueType{api.ValueTypeI32}},
	exportHandle: {params: []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, results: []api.ValueType{api.ValueTypeI64}},
}

func checkHeader(wasm []byte) error {
	if !bytes.HasPrefix(wasm, wasmHeader) {
		return errors.New("not a WebAssembly 1.0 binary module: bad magic number or version")
	}
	return nil
}

// checkABI reports every way the module misses the reactor ABI at once, and
// whether its memory can start within the limit.
func checkABI(m wazero.CompiledModule, limitPages uint32) error {
	var errs []error
	mem, ok := m.ExportedMemories()[exportMemory]
	switch {
	case !ok:
		errs = append(errs, fmt.Errorf("missing export %q (memory)", exportMemory))
	case mem.Min() > limitPages:
		errs = append(errs, fmt.Errorf("memory starts at %d pages, over the limit of %d", mem.Min(), limitPages))
	}
	funcs := m.ExportedFunctions()
	for _, name := range []string{exportAlloc, exportHandle} {
		want := requiredFuncs[name]
		def, ok := funcs[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("missing export %q (func %s)", name, want))
		case !slices.Equal(def.ParamTypes(), want.params) || !slices.Equal(def.ResultTypes(), want.results):
			errs = append(errs, fmt.Errorf("export %q is func %s, want func %s", name, signature{def.ParamTypes(), def.ResultTypes()}, want))
		}
	}
	if def, ok := funcs[exportInitialize]; ok && (len(def.ParamTypes()) > 0 || len(def.ResultTypes()) > 0) {
		errs = append(errs, fmt.Errorf("export %q must take and return nothing", exportInitialize))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("module does not implement the Cairn reactor ABI v1: %w", err)
	}
	return nil
}

// String renders the signature in WebAssembly text format, e.g. "(param i32) (result i64)".
func (s signature) String() string {
	var b bytes.Buffer
	for _, part := range []struct {
		kind  string
		types []api.ValueType
	}{{"param", s.params}, {"result", s.results}} {
		if len(part.types) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("(" + part.kind)
		for _, t := range part.types {
			b.WriteString(" " + api.ValueTypeName(t))
		}
		b.WriteByte(')')
	}
	if b.Len() == 0 {
		return "()"
	}
	return b.String()
}
