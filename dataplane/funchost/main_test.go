package funchost

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr/testr"
)

// Shared by all tests: the Go guest, built once, and a compilation cache so
// that only the first Host compiles it.
var (
	goGuest  []byte
	cmdGuest []byte
	cacheDir string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "funchost-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	cacheDir = filepath.Join(dir, "cache")
	if goGuest, err = buildGoGuest(filepath.Join(dir, "echo.wasm")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if cmdGuest, err = buildCommandGuest(filepath.Join(dir, "cmd.wasm")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// buildGoGuest compiles testdata/guests/echo as a wasip1 reactor.
func buildGoGuest(out string) ([]byte, error) {
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./testdata/guests/echo")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if output, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building Go guest: %w\n%s", err, output)
	}
	return os.ReadFile(out)
}

func newHost(t testing.TB) *Host {
	t.Helper()
	h, err := New(context.Background(), Options{CacheDir: cacheDir, Logger: testr.NewWithInterface(t, testr.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h
}

func load(t testing.TB, h *Host, wasm []byte, cfg Config) *Function {
	t.Helper()
	f, err := h.Load(context.Background(), t.Name(), wasm, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close(context.Background()) })
	return f
}

func invoke(t testing.TB, f *Function, path string, body string) Response {
	t.Helper()
	resp, err := f.Invoke(context.Background(), Request{Method: "POST", Path: path, Header: nil, Body: []byte(body)})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp
}
