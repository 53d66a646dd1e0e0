package scantest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	goBinMu    sync.Mutex
	goBinCache = map[string][]byte{}
)

// GoBinary compiles a tiny linux program that imports module@version, so
// the module is recorded in the binary's build info exactly as in a real
// application. It shells out to `go build` (a few seconds the first time);
// results are cached per module@version for the life of the test process.
// The module must be obtainable by the go command (module cache or
// GOPROXY); checksum-database lookups are turned off for it.
func GoBinary(t testing.TB, module, version string) []byte {
	t.Helper()
	key := module + "@" + version
	goBinMu.Lock()
	defer goBinMu.Unlock()
	if b, ok := goBinCache[key]; ok {
		return b
	}
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatalf("scantest: %v", err)
		}
	}
	write("go.mod", fmt.Sprintf("module example.invalid/cairnfixture\n\ngo 1.22\n\nrequire %s %s\n", module, version))
	// Importing the module root for its side effects is enough for it to be
	// linked and listed in build info; packages without an importable root
	// need a module with a root package.
	write("main.go", fmt.Sprintf("package main\n\nimport _ %q\n\nfunc main() {}\n", module))
	out := filepath.Join(dir, "fixture")
	cmd := exec.Command(goCommand(), "build", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GOOS=linux", "GOARCH="+runtime.GOARCH, "CGO_ENABLED=0",
		"GOFLAGS=-mod=mod -buildvcs=false", "GOWORK=off", "GOTOOLCHAIN=local", "GOSUMDB=off",
	)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scantest: go build fixture with %s: %v\n%s", key, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("scantest: %v", err)
	}
	goBinCache[key] = b
	return b
}

// goCommand is the go command on PATH (the toolchain running the tests).
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}
