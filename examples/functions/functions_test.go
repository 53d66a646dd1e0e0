// Package functions holds example Cairn Functions; this test proves their
// committed binaries load into a function host and follow the ABI.
package functions_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr/testr"

	"github.com/cairn-platform/cairn/dataplane/funchost"
)

func load(t *testing.T, path string) *funchost.Function {
	t.Helper()
	wasm, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, err := funchost.New(ctx, funchost.Options{Logger: testr.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(ctx) })
	f, err := h.Load(ctx, filepath.Base(filepath.Dir(path)), wasm, funchost.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// buildHello compiles the Go example (its 1.8 MB binary is not committed;
// `make functions` builds it for deployment).
func buildHello(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "hello-go", "hello.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./hello-go")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building hello-go: %v\n%s", err, b)
	}
	return out
}

func TestHelloGo(t *testing.T) {
	f := load(t, buildHello(t))
	for _, path := range []string{"/", "/hello/world?x=1", "/" + string(bytes.Repeat([]byte("long"), 100))} {
		resp, err := f.Invoke(context.Background(), funchost.Request{Method: http.MethodGet, Path: path})
		if err != nil {
			t.Fatal(err)
		}
		want := "Hello from Cairn! You asked for " + path + "\n"
		if resp.Status != http.StatusOK || string(resp.Body) != want || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("got %d %v %q, want 200 text/plain %q", resp.Status, resp.Header, resp.Body, want)
		}
	}
}

func TestEchoWAT(t *testing.T) {
	f := load(t, "echo-wat/echo.wasm")
	// 200 KiB makes cairn_alloc grow memory past its first page.
	for _, body := range [][]byte{nil, []byte("hello"), bytes.Repeat([]byte("x"), 200<<10)} {
		resp, err := f.Invoke(context.Background(), funchost.Request{Method: http.MethodPost, Path: "/", Body: body})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != http.StatusOK || !bytes.Equal(resp.Body, body) || resp.Header.Get("X-Function") != "echo-wat" {
			t.Errorf("got %d %v %d bytes, want 200, X-Function: echo-wat, the %d bytes sent", resp.Status, resp.Header, len(resp.Body), len(body))
		}
	}
}

// TestEchoWATAssembles: the committed echo.wasm is what assemble.go emits.
func TestEchoWATAssembles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the Go toolchain")
	}
	out := filepath.Join(t.TempDir(), "echo.wasm")
	cmd := exec.Command("go", "run", "assemble.go", "-o", out)
	cmd.Dir = "echo-wat"
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, output)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("echo-wat/echo.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, committed) {
		t.Error("echo-wat/echo.wasm differs from what assemble.go emits: run make functions")
	}
}
