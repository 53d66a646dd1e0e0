//go:build wasip1

// Command hello-go is a Cairn Function: a Go wasip1 reactor implementing the
// Cairn HTTP reactor ABI v1 (see dataplane/funchost). It greets the caller
// with the path it asked for:
//
//	$ curl http://gateway/hello/world?x=1
//	Hello from Cairn! You asked for /hello/world?x=1
//
// Build it with `make functions`, or:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags='-s -w' -o hello.wasm .
package main

import "unsafe"

//go:wasmimport cairn set_header
func setHeader(namePtr unsafe.Pointer, nameLen int32, valuePtr unsafe.Pointer, valueLen int32)

//go:wasmimport cairn request_path
func requestPath(bufPtr unsafe.Pointer, bufLen int32) int32

// main is not called: a reactor's exports are.
func main() {}

var (
	request  []byte // reachable from cairn_alloc until cairn_handle
	response []byte // reachable until the host copied it
)

// cairnAlloc returns a buffer for the request body.
//
//go:wasmexport cairn_alloc
func cairnAlloc(size int32) int32 {
	request = make([]byte, size)
	return int32(uintptr(unsafe.Pointer(unsafe.SliceData(request))))
}

// cairnHandle serves one request; the body is ignored.
//
//go:wasmexport cairn_handle
func cairnHandle(_, _ int32) int64 {
	request = nil
	response = []byte("Hello from Cairn! You asked for " + path() + "\n")
	addHeader("Content-Type", "text/plain; charset=utf-8")
	ptr := uintptr(unsafe.Pointer(unsafe.SliceData(response)))
	return int64(ptr)<<32 | int64(len(response))
}

// path fetches the request path and query, retrying with a larger buffer
// when the first is too small, as the ABI asks.
func path() string {
	buf := make([]byte, 256)
	n := requestPath(unsafe.Pointer(unsafe.SliceData(buf)), int32(len(buf)))
	if int(n) > len(buf) {
		buf = make([]byte, n)
		n = requestPath(unsafe.Pointer(unsafe.SliceData(buf)), n)
	}
	return string(buf[:n])
}

func addHeader(name, value string) {
	setHeader(unsafe.Pointer(unsafe.StringData(name)), int32(len(name)), unsafe.Pointer(unsafe.StringData(value)), int32(len(value)))
}
