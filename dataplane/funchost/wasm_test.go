package funchost

// A minimal WebAssembly binary encoder for hand-written test guests: edge
// cases that are awkward to get out of a compiler.

const (
	i32 = 0x7f
	i64 = 0x7e
)

// Function bodies, without locals, as instructions ending in 0x0b (end).
var (
	// (param i32) (result i32): returns 1024, a fixed request buffer.
	bodyAllocFixed = []byte{0x41, 0x80, 0x08, 0x0b}
	// (param i32 i32) (result i64): returns the request body as the response.
	bodyEcho = []byte{0x20, 0x00, 0xad, 0x42, 0x20, 0x86, 0x20, 0x01, 0xad, 0x84, 0x0b}
	// (param i32 i32) (result i64): grows memory a page at a time until
	// memory.grow fails, then returns as many bytes as it has pages.
	bodyGrowUntilRefused = []byte{
		0x03, 0x40, // loop
		0x41, 0x01, 0x40, 0x00, // memory.grow (i32.const 1)
		0x41, 0x7f, 0x47, 0x0d, 0x00, // br_if 0 (result != -1)
		0x0b,             // end
		0x3f, 0x00, 0xad, // i64.extend_i32_u (memory.size)
		0x0b,
	}
	// (param i32 i32) (result i64): returns 16 bytes at 256 MiB, past the
	// end of memory.
	bodyOutOfBounds = []byte{0x42, 0x90, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0x0b}
)

type wasmFunc struct {
	name            string
	params, results []byte
	body            []byte
}

// wasmImport is an imported function.
type wasmImport struct {
	module, name    string
	params, results []byte
}

// reactor is a module with one memory of minPages (no maximum) exported as
// "memory" and funcs exported under their names.
func reactor(minPages uint32, funcs ...wasmFunc) []byte {
	return reactorImporting(nil, minPages, funcs...)
}

// reactorImporting is a reactor that also imports functions.
func reactorImporting(imports []wasmImport, minPages uint32, funcs ...wasmFunc) []byte {
	var types, imps, decls, exports, code []byte
	types = uleb(types, uint32(len(imports)+len(funcs)))
	signature := func(params, results []byte) {
		types = append(uleb(append(types, 0x60), uint32(len(params))), params...)
		types = append(uleb(types, uint32(len(results))), results...)
	}
	imps = uleb(imps, uint32(len(imports)))
	for i, imp := range imports {
		signature(imp.params, imp.results)
		imps = uleb(append(name(name(imps, imp.module), imp.name), 0x00), uint32(i))
	}
	decls = uleb(decls, uint32(len(funcs)))
	exports = uleb(exports, uint32(len(funcs)+1))
	exports = append(name(exports, "memory"), 0x02, 0x00)
	code = uleb(code, uint32(len(funcs)))
	for i, f := range funcs {
		index := uint32(len(imports) + i) // imports come first in the index space
		signature(f.params, f.results)
		decls = uleb(decls, index)
		exports = uleb(append(name(exports, f.name), 0x00), index)
		body := append([]byte{0x00}, f.body...) // no locals
		code = append(uleb(code, uint32(len(body))), body...)
	}
	memory := uleb([]byte{0x01, 0x00}, minPages) // one memory, no maximum
	out := append([]byte{}, wasmHeader...)
	for _, s := range []struct {
		id      byte
		payload []byte
	}{{1, types}, {2, imps}, {3, decls}, {5, memory}, {7, exports}, {10, code}} {
		out = append(uleb(append(out, s.id), uint32(len(s.payload))), s.payload...)
	}
	return out
}

// echoReactor is the smallest complete guest.
func echoReactor() []byte {
	return reactor(1,
		wasmFunc{"cairn_alloc", []byte{i32}, []byte{i32}, bodyAllocFixed},
		wasmFunc{"cairn_handle", []byte{i32, i32}, []byte{i64}, bodyEcho},
	)
}

func uleb(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func name(b []byte, s string) []byte {
	return append(uleb(b, uint32(len(s))), s...)
}
