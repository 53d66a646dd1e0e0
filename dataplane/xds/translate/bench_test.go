package translate_test

import (
	"fmt"
	"testing"

	"github.com/cairn-platform/cairn/dataplane/xds/translate"
	"github.com/cairn-platform/cairn/dataplane/xds/translate/translatetest"
)

func BenchmarkTranslate(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		in := translatetest.SyntheticInput(n)
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res := translate.Translate(in)
				if len(res.Envoy.RouteConfigs) != 1 {
					b.Fatal("no route table")
				}
			}
		})
	}
}

func TestSyntheticInputTranslatesCleanly(t *testing.T) {
	res := translate.Translate(translatetest.SyntheticInput(200))
	for k, r := range res.Routes {
		if r.Err != nil {
			t.Fatalf("%s: %v", k, r.Err)
		}
	}
	if err := translate.CheckReferences(res.Envoy); err != nil {
		t.Fatal(err)
	}
	// 200 routes × 2 rules, on 10 hosts.
	vhosts := res.Envoy.RouteConfigs[0].VirtualHosts
	entries := 0
	for _, vh := range vhosts {
		entries += len(vh.Routes)
	}
	if len(vhosts) != 10 || entries != 400 {
		t.Fatalf("got %d virtual hosts with %d routes, want 10 with 400", len(vhosts), entries)
	}
}
