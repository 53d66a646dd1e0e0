//go:build wasip1

// Command echo is a Cairn reactor (ABI v1) for the funchost tests. It routes
// on the request path:
//
//	/echo   echoes the body; status from X-Status, request details in X-Echo-* headers
//	/count  returns how many /count requests this instance served
//	/env    returns its environment, one variable a line
//	/file   returns the errors of reading files and listing directories
//	/spin   busy-waits for the milliseconds given in the body
//	/loop   never returns
//	/grow   allocates until memory runs out
//	/big    returns a 64 KiB body
//	/log    logs the body through the host
package main

import (
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

//go:wasmimport cairn set_status
func setStatus(code int32)

//go:wasmimport cairn set_header
func setHeader(namePtr unsafe.Pointer, nameLen int32, valuePtr unsafe.Pointer, valueLen int32)

//go:wasmimport cairn request_method
func requestMethod(bufPtr unsafe.Pointer, bufLen int32) int32

//go:wasmimport cairn request_path
func requestPath(bufPtr unsafe.Pointer, bufLen int32) int32

//go:wasmimport cairn request_header
func requestHeader(namePtr unsafe.Pointer, nameLen int32, bufPtr unsafe.Pointer, bufLen int32) int32

//go:wasmimport cairn log
func hostLog(ptr unsafe.Pointer, size int32)

func main() {}

var (
	request  []byte // kept reachable between cairn_alloc and cairn_handle
	response []byte // kept reachable until the host copied it
	count    int
	retained [][]byte
)

//go:wasmexport cairn_alloc
func cairnAlloc(size int32) int32 {
	request = make([]byte, size)
	return int32(uintptr(unsafe.Pointer(unsafe.SliceData(request))))
}

//go:wasmexport cairn_handle
func cairnHandle(_, size int32) int64 {
	var body []byte
	if size > 0 {
		body = request[:size]
	}
	response = handle(body)
	ptr := uintptr(unsafe.Pointer(unsafe.SliceData(response)))
	return int64(ptr)<<32 | int64(len(response))
}

func handle(body []byte) []byte {
	path := fetch(func(buf unsafe.Pointer, n int32) int32 { return requestPath(buf, n) })
	switch path {
	case "/count":
		count++
		return []byte(strconv.Itoa(count))
	case "/env":
		return []byte(strings.Join(os.Environ(), "\n"))
	case "/file":
		var errs []string
		for _, name := range []string{"/etc/passwd", "secret.txt", "."} {
			if _, err := os.ReadFile(name); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if _, err := os.ReadDir("/"); err != nil {
			errs = append(errs, err.Error())
		}
		return []byte(strings.Join(errs, "\n"))
	case "/spin":
		ms, _ := strconv.Atoi(string(body))
		for deadline := time.Now().Add(time.Duration(ms) * time.Millisecond); time.Now().Before(deadline); {
		}
		return nil
	case "/loop":
		for {
		}
	case "/grow":
		for {
			retained = append(retained, make([]byte, 1<<20))
		}
	case "/big":
		return make([]byte, 64<<10)
	case "/log":
		hostLog(unsafe.Pointer(unsafe.SliceData(body)), int32(len(body)))
		return nil
	}
	if status, ok := header("X-Status"); ok {
		code, _ := strconv.Atoi(status)
		setStatus(int32(code))
	}
	method := fetch(func(buf unsafe.Pointer, n int32) int32 { return requestMethod(buf, n) })
	test, ok := header("X-Test")
	if !ok {
		test = "absent"
	}
	addHeader("X-Echo-Method", method)
	addHeader("X-Echo-Path", path)
	addHeader("X-Echo-Test", test)
	return body
}

// fetch calls a host getter, retrying once with a buffer of the full length.
func fetch(get func(buf unsafe.Pointer, n int32) int32) string {
	buf := make([]byte, 8) // small, to exercise the retry
	n := get(unsafe.Pointer(unsafe.SliceData(buf)), int32(len(buf)))
	if n > int32(len(buf)) {
		buf = make([]byte, n)
		n = get(unsafe.Pointer(unsafe.SliceData(buf)), n)
	}
	return string(buf[:n])
}

// header fetches a request header's values; false when it is absent.
func header(name string) (string, bool) {
	found := true
	value := fetch(func(buf unsafe.Pointer, n int32) int32 {
		got := requestHeader(unsafe.Pointer(unsafe.StringData(name)), int32(len(name)), buf, n)
		found = got >= 0
		return max(got, 0)
	})
	return value, found
}

func addHeader(name, value string) {
	setHeader(unsafe.Pointer(unsafe.StringData(name)), int32(len(name)), unsafe.Pointer(unsafe.StringData(value)), int32(len(value)))
}
