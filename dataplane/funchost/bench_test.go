package funchost

import (
	"context"
	"testing"
)

// BenchmarkInvoke measures one invocation of an echo guest: the hand-encoded
// one ("small") and the Go one, each pooled and per-request.
func BenchmarkInvoke(b *testing.B) {
	h := newHost(b)
	body := []byte("hello")
	for _, guest := range []struct {
		name string
		wasm []byte
	}{{"small", echoReactor()}, {"go", goGuest}} {
		for _, iso := range []struct {
			name      string
			isolation Isolation
		}{{"pooled", Pooled}, {"per-request", PerRequest}} {
			b.Run(guest.name+"/"+iso.name, func(b *testing.B) {
				f := load(b, h, guest.wasm, Config{Isolation: iso.isolation})
				req := Request{Method: "POST", Path: "/echo", Body: body}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := f.Invoke(context.Background(), req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
