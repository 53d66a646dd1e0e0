;; echo-wat: the smallest useful Cairn Function, in WebAssembly text.
;; It implements the Cairn HTTP reactor ABI v1 (see dataplane/funchost):
;; the response body is the request body, with the header
;; "X-Function: echo-wat".
;;
;; Rebuild echo.wasm with wat2wasm (Debian/Ubuntu package wabt):
;;   wat2wasm echo.wat -o echo.wasm
;; or, without wabt, with the Go assembler next to this file, which encodes
;; this module instruction by instruction:
;;   go run assemble.go -o echo.wasm
(module
  (import "cairn" "set_header" (func $set_header (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "X-Function")
  (data (i32.const 32) "echo-wat")

  ;; The request body goes at offset 1024; memory grows to hold it.
  (func (export "cairn_alloc") (param $size i32) (result i32)
    (local $need i32)
    ;; pages needed: (1024 + size + 65535) / 65536
    (local.set $need (i32.shr_u (i32.add (local.get $size) (i32.const 66559)) (i32.const 16)))
    (if (i32.gt_u (local.get $need) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $need) (memory.size))) (i32.const -1))
          (then unreachable))))
    (i32.const 1024))

  ;; Sets the header and returns the body in place: (ptr << 32) | len.
  (func (export "cairn_handle") (param $ptr i32) (param $len i32) (result i64)
    (call $set_header (i32.const 16) (i32.const 10) (i32.const 32) (i32.const 8))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
      (i64.extend_i32_u (local.get $len)))))
