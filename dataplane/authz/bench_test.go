package authz

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// BenchmarkCheckCacheHit is the steady state: a known token, answered from
// the cache. "direct" is the service alone, "grpc" adds a loopback gRPC
// round trip as Envoy would make.
func BenchmarkCheckCacheHit(b *testing.B) {
	d := newIDP(b)
	h := newHarness(b, map[string]Policy{shop: d.policy()})
	d.active("tk_ada", "ada", "orders:read orders:write", h.clock.Now().Add(time.Hour))
	req := h.request(shop, "acme", "tk_ada")
	req.Attributes.Request.Http.Headers["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	ctx := context.Background()

	check := func(b *testing.B, do func() (int32, error)) {
		b.ReportAllocs()
		for b.Loop() {
			code, err := do()
			if err != nil || codes.Code(code) != codes.OK {
				b.Fatalf("check: code %v, err %v", codes.Code(code), err)
			}
		}
	}
	b.Run("direct", func(b *testing.B) {
		check(b, func() (int32, error) {
			resp, err := h.srv.Check(ctx, req)
			return resp.GetStatus().GetCode(), err
		})
	})
	b.Run("grpc", func(b *testing.B) {
		check(b, func() (int32, error) {
			resp, err := h.client.Check(ctx, req)
			return resp.GetStatus().GetCode(), err
		})
	})
	if got := d.callsFor("tk_ada"); got != 1 {
		b.Fatalf("endpoint asked %d times, want 1: the benchmark did not measure cache hits", got)
	}
}
