package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestManagerDoesNotLinkScanners keeps syft, grype and stereoscope (~100 MB,
// minutes of build) out of the manager: it reaches the scanner service
// through dataplane/scan/scanapi only.
func TestManagerDoesNotLinkScanners(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go tool not on PATH: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 {
		t.Fatalf("go list -deps listed only %d packages", len(deps))
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "github.com/anchore/") || p == "github.com/cairn-platform/cairn/dataplane/scan" {
			t.Errorf("the manager links %s", p)
		}
	}
}
