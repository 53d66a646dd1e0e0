package server

import (
	"fmt"
	"testing"

	"github.com/cairn-platform/cairn/dataplane/xds/translate"
	"github.com/cairn-platform/cairn/dataplane/xds/translate/translatetest"
)

// BenchmarkTranslateAndSnapshot is the whole CPU path from Routes to what the
// cache serves: translation plus the content-versioned snapshot (hashing and
// the delta version map) of the Envoy flavor.
func BenchmarkTranslateAndSnapshot(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		in := translatetest.SyntheticInput(n)
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res := translate.Translate(in)
				if _, err := newSnapshot(res.Envoy); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
