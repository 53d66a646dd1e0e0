package funchost

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-logr/logr"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"golang.org/x/net/http/httpguts"
)

const importModule = "cairn"

// call is the state of one request, reached by the host functions through
// the context of the guest call: the "cairn" module is shared by all
// instances of the runtime.
type call struct {
	req    *Request
	resp   Response
	log    logr.Logger
	budget int64 // response bytes left for headers and body
}

type callKey struct{}

func withCall(ctx context.Context, c *call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

func callFrom(ctx context.Context) *call {
	c, ok := ctx.Value(callKey{}).(*call)
	if !ok {
		// Only reachable when a guest calls an import outside a request,
		// e.g. from _initialize; trapping tells its author.
		panic(fmt.Errorf("%s imports called outside a request", importModule))
	}
	return c
}

func cairnImports(r wazero.Runtime) wazero.HostModuleBuilder {
	i32 := api.ValueTypeI32
	b := r.NewHostModuleBuilder(importModule)
	export := func(name string, fn api.GoModuleFunc, params []api.ValueType, results ...api.ValueType) {
		b.NewFunctionBuilder().WithGoModuleFunction(fn, params, results).Export(name)
	}
	export("set_status", setStatus, []api.ValueType{i32})
	export("set_header", setHeader, []api.ValueType{i32, i32, i32, i32})
	export("request_method", requestMethod, []api.ValueType{i32, i32}, i32)
	export("request_path", requestPath, []api.ValueType{i32, i32}, i32)
	export("request_header", requestHeader, []api.ValueType{i32, i32, i32, i32}, i32)
	export("log", guestLog, []api.ValueType{i32, i32})
	return b
}

func setStatus(ctx context.Context, _ api.Module, stack []uint64) {
	if code := api.DecodeI32(stack[0]); code >= 200 && code <= 599 {
		callFrom(ctx).resp.Status = int(code)
	}
}

func setHeader(ctx context.Context, m api.Module, stack []uint64) {
	c := callFrom(ctx)
	name := string(read(m, stack[0], stack[1]))
	value := string(read(m, stack[2], stack[3]))
	if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
		return
	}
	// Headers cost as much as body bytes; over budget the call fails once
	// the guest returns.
	c.budget -= int64(len(name) + len(value))
	if c.budget < 0 {
		return
	}
	c.resp.Header.Add(name, value)
}

func requestMethod(ctx context.Context, m api.Module, stack []uint64) {
	stack[0] = copyOut(m, callFrom(ctx).req.Method, stack[0], stack[1])
}

func requestPath(ctx context.Context, m api.Module, stack []uint64) {
	stack[0] = copyOut(m, callFrom(ctx).req.Path, stack[0], stack[1])
}

func requestHeader(ctx context.Context, m api.Module, stack []uint64) {
	values := callFrom(ctx).req.Header.Values(string(read(m, stack[0], stack[1])))
	if values == nil {
		stack[0] = api.EncodeI32(-1)
		return
	}
	stack[0] = copyOut(m, strings.Join(values, ", "), stack[2], stack[3])
}

func guestLog(ctx context.Context, m api.Module, stack []uint64) {
	callFrom(ctx).log.Info("guest log", "message", string(read(m, stack[0], stack[1])))
}

// read returns a view of guest memory; callers copy what they keep. Out of
// bounds is a guest bug: the panic traps the guest and discards its instance.
func read(m api.Module, ptr, size uint64) []byte {
	b, ok := m.Memory().Read(api.DecodeU32(ptr), api.DecodeU32(size))
	if !ok {
		panic(fmt.Errorf("guest memory [%d, +%d) out of bounds", uint32(ptr), uint32(size)))
	}
	return b
}

// copyOut copies as much of s as fits into the guest buffer and returns the
// full length, so the guest can retry with a larger buffer.
func copyOut(m api.Module, s string, ptr, size uint64) uint64 {
	copy(read(m, ptr, size), s)
	return api.EncodeI32(int32(len(s)))
}
