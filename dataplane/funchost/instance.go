package funchost

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"github.com/go-logr/logr"
	"github.com/tetratelabs/wazero/api"
)

// instance is one instantiated guest; it serves one request at a time.
type instance struct {
	mod    api.Module
	alloc  api.Function
	handle api.Function
}

func newInstance(mod api.Module) *instance {
	return &instance{mod: mod, alloc: mod.ExportedFunction(exportAlloc), handle: mod.ExportedFunction(exportHandle)}
}

// serve runs one request. Any error but ErrResponseTooLarge means the
// instance must be discarded.
func (in *instance) serve(ctx context.Context, req *Request, maxResponse int64, log logr.Logger) (Response, error) {
	c := &call{req: req, resp: Response{Status: http.StatusOK, Header: http.Header{}}, log: log, budget: maxResponse}
	ctx = withCall(ctx, c)
	ptr, err := in.writeBody(ctx, req.Body)
	if err != nil {
		return Response{}, err
	}
	res, err := in.handle.Call(ctx, uint64(ptr), uint64(len(req.Body)))
	if err != nil {
		return Response{}, fmt.Errorf("%s: %w", exportHandle, err)
	}
	respPtr, respLen := uint32(res[0]>>32), uint32(res[0])
	if int64(respLen) > c.budget {
		return Response{}, fmt.Errorf("%w: %d body bytes and headers exceed the limit of %d", ErrResponseTooLarge, respLen, maxResponse)
	}
	body, ok := in.mod.Memory().Read(respPtr, respLen)
	if !ok {
		return Response{}, fmt.Errorf("ABI violation: response [%d, +%d) is out of memory bounds", respPtr, respLen)
	}
	c.resp.Body = bytes.Clone(body)
	return c.resp, nil
}

// writeBody copies the request body into a guest buffer from cairn_alloc.
func (in *instance) writeBody(ctx context.Context, body []byte) (uint32, error) {
	if len(body) == 0 {
		return 0, nil
	}
	res, err := in.alloc.Call(ctx, uint64(len(body)))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", exportAlloc, err)
	}
	ptr := api.DecodeU32(res[0])
	if !in.mod.Memory().Write(ptr, body) {
		return 0, fmt.Errorf("ABI violation: %s(%d) returned %d, out of memory bounds", exportAlloc, len(body), ptr)
	}
	return ptr, nil
}

func (in *instance) close(ctx context.Context) error {
	if in.mod == nil {
		return nil // a Command slot: its module closed when it exited
	}
	if err := in.mod.Close(ctx); err != nil {
		return fmt.Errorf("closing instance: %w", err)
	}
	return nil
}
