//go:build ignore

// Command assemble writes echo.wasm, the binary of echo.wat, for machines
// without wat2wasm. Keep the two in step: every instruction below is
// commented with its text form.
//
//	go run assemble.go -o echo.wasm
package main

import (
	"flag"
	"log"
	"os"
)

const (
	i32 = 0x7f
	i64 = 0x7e
)

func main() {
	out := flag.String("o", "echo.wasm", "output file")
	flag.Parse()
	if err := os.WriteFile(*out, module(), 0o644); err != nil {
		log.Fatal(err)
	}
}

func module() []byte {
	types := vec(
		funcType([]byte{i32, i32, i32, i32}, nil), // 0: set_header
		funcType([]byte{i32}, []byte{i32}),        // 1: cairn_alloc
		funcType([]byte{i32, i32}, []byte{i64}),   // 2: cairn_handle
	)
	imports := vec(cat(str("cairn"), str("set_header"), []byte{0x00, 0x00})) // func of type 0
	funcs := vec([]byte{0x01}, []byte{0x02})                                 // types of funcs 1 and 2
	memory := vec([]byte{0x00, 0x01})                                        // min 1 page, no max
	exports := vec(
		cat(str("memory"), []byte{0x02, 0x00}),
		cat(str("cairn_alloc"), []byte{0x00, 0x01}),
		cat(str("cairn_handle"), []byte{0x00, 0x02}),
	)
	alloc := cat(
		[]byte{0x01, 0x01, i32}, // (local $need i32)
		[]byte{0x20, 0x00},      // local.get $size
		i32Const(66559),         // i32.const 66559
		[]byte{0x6a},            // i32.add
		i32Const(16),            // i32.const 16
		[]byte{0x76},            // i32.shr_u
		[]byte{0x21, 0x01},      // local.set $need
		[]byte{0x20, 0x01},      // local.get $need
		[]byte{0x3f, 0x00},      // memory.size
		[]byte{0x4b},            // i32.gt_u
		[]byte{0x04, 0x40},      // if
		[]byte{0x20, 0x01},      //   local.get $need
		[]byte{0x3f, 0x00},      //   memory.size
		[]byte{0x6b},            //   i32.sub
		[]byte{0x40, 0x00},      //   memory.grow
		i32Const(-1),            //   i32.const -1
		[]byte{0x46},            //   i32.eq
		[]byte{0x04, 0x40},      //   if
		[]byte{0x00},            //     unreachable
		[]byte{0x0b},            //   end
		[]byte{0x0b},            // end
		i32Const(1024),          // i32.const 1024
		[]byte{0x0b},            // end
	)
	handle := cat(
		[]byte{0x00},       // no locals
		i32Const(16),       // i32.const 16
		i32Const(10),       // i32.const 10
		i32Const(32),       // i32.const 32
		i32Const(8),        // i32.const 8
		[]byte{0x10, 0x00}, // call $set_header
		[]byte{0x20, 0x00}, // local.get $ptr
		[]byte{0xad},       // i64.extend_i32_u
		[]byte{0x42, 0x20}, // i64.const 32
		[]byte{0x86},       // i64.shl
		[]byte{0x20, 0x01}, // local.get $len
		[]byte{0xad},       // i64.extend_i32_u
		[]byte{0x84},       // i64.or
		[]byte{0x0b},       // end
	)
	code := vec(sized(alloc), sized(handle))
	data := vec(
		cat([]byte{0x00}, i32Const(16), []byte{0x0b}, str("X-Function")),
		cat([]byte{0x00}, i32Const(32), []byte{0x0b}, str("echo-wat")),
	)
	return cat(
		[]byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00},
		section(1, types), section(2, imports), section(3, funcs), section(5, memory),
		section(7, exports), section(10, code), section(11, data),
	)
}

func funcType(params, results []byte) []byte {
	return cat([]byte{0x60}, sized(params), sized(results))
}

func i32Const(v int32) []byte { return append([]byte{0x41}, sleb(v)...) }

func section(id byte, payload []byte) []byte { return cat([]byte{id}, sized(payload)) }

// sized prefixes b with its length; str and vec of bytes are the same.
func sized(b []byte) []byte { return cat(uleb(uint32(len(b))), b) }

func str(s string) []byte { return sized([]byte(s)) }

func vec(items ...[]byte) []byte { return cat(append([][]byte{uleb(uint32(len(items)))}, items...)...) }

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func uleb(v uint32) []byte {
	var out []byte
	for v >= 0x80 {
		out = append(out, byte(v)|0x80)
		v >>= 7
	}
	return append(out, byte(v))
}

func sleb(v int32) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && b&0x40 == 0) || (v == -1 && b&0x40 != 0) {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}
