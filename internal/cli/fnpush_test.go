package cli

import (
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/google/go-containerregistry/pkg/registry"

	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/funchost/source"
)

// TestFnPush pushes a module to a registry on loopback and resolves and
// pulls it back the way the Function controller and the hosts do.
func TestFnPush(t *testing.T) {
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	// No docker config: anonymous.
	t.Setenv("DOCKER_CONFIG", t.TempDir())

	dir := t.TempDir()
	module := append([]byte("\x00asm\x01\x00\x00\x00"), []byte("\x00\x04name")...)
	file := filepath.Join(dir, "m.wasm")
	notWasm := filepath.Join(dir, "m.txt")
	if err := os.WriteFile(file, module, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(notWasm, []byte("text"), 0o600); err != nil {
		t.Fatal(err)
	}

	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	if code := Run(t.Context(), []string{"fn", "push", file, host + "/fns/m:v1", "--insecure"}, streams); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], host+"/fns/m@sha256:") {
		t.Fatalf("output %q; want the pushed line and the digest reference", out)
	}

	src := &serverlessv1alpha1.OCIModule{Ref: host + "/fns/m:v1", Insecure: true}
	m, err := source.ResolveOCI(t.Context(), nil, nil, "", src)
	if err != nil {
		t.Fatal(err)
	}
	if m.Manifest != lines[1] || m.Size != int64(len(module)) {
		t.Fatalf("resolved %+v; want manifest %s and size %d", m, lines[1], len(module))
	}
	got, err := source.PullOCI(t.Context(), nil, nil, "", src, m.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(module) {
		t.Fatalf("pulled %q; want %q", got, module)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fn", "push", notWasm, host + "/fns/m:v1"}, "is not a WebAssembly binary module"},
		{[]string{"fn", "push", file, "Not A Ref"}, "invalid reference"},
		{[]string{"fn", "push", file}, "accepts 2 arg(s)"},
	} {
		streams, _, _, errOut := genericiooptions.NewTestIOStreams()
		if code := Run(t.Context(), tc.args, streams); code == 0 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error with %q", tc.args, code, errOut, tc.want)
		}
	}
}
