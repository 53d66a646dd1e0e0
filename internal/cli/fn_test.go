package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

var functions = schema.GroupVersionResource{Group: "serverless.cairn.dev", Version: "v1alpha1", Resource: "functions"}

// installFunctionCRD installs the real Function CRD for the test only: it
// is in category cairn, which other tests list.
func (c *testCluster) installFunctionCRD(t *testing.T) {
	c.installCRD(t, "serverless.cairn.dev_functions.yaml", "functions.serverless.cairn.dev")
}

// installCRD installs config/crd/bases/file for the test only and waits
// for its deletion afterwards (deletion finishes asynchronously, and the
// next test may install it again).
func (c *testCluster) installCRD(t *testing.T, file, name string) {
	t.Helper()
	crds, err := envtest.InstallCRDs(c.config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join("..", "..", "config", "crd", "bases", file)},
	})
	if err != nil {
		t.Fatalf("installing CRD %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := envtest.UninstallCRDs(c.config, envtest.CRDInstallOptions{CRDs: crds}); err != nil {
			t.Errorf("uninstalling CRD %s: %v", name, err)
		}
		crd := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			_, err := c.dynamic.Resource(crd).Get(context.Background(), name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("CRD %s still there 30s after its deletion: %v", name, err)
				return
			}
		}
	})
}

func TestFnDeployCreatesAndUpdates(t *testing.T) {
	c := cluster(t)
	c.installFunctionCRD(t)
	ns := c.namespace(t)
	dir := t.TempDir()
	v1 := append([]byte("\x00asm\x01\x00\x00\x00"), "version one"...)
	v2 := append([]byte("\x00asm\x01\x00\x00\x00"), "version two"...)
	module := filepath.Join(dir, "echo.wasm")
	writeFile(t, module, string(v1))

	r := mustSucceed(t, c.cairn(t, "fn", "deploy", "echo", "-n", ns, "-f", module, "--isolation", "per-request", "--timeout", "2s"))
	assertLines(t, r.stdout,
		`^configmap/echo-module serverside-applied: 19 bytes, sha256:`+digest(v1)+`$`,
		`^function.serverless.cairn.dev/echo serverside-applied in namespace `+ns+`$`,
	)
	cm, err := c.kube.CoreV1().ConfigMaps(ns).Get(t.Context(), "echo-module", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cm.BinaryData["module.wasm"], v1) || cm.Annotations[digestAnnotation] != digest(v1) {
		t.Errorf("ConfigMap binaryData %q, annotations %v", cm.BinaryData["module.wasm"], cm.Annotations)
	}
	fn, err := c.get(t, functions, ns, "echo")
	if err != nil {
		t.Fatal(err)
	}
	assertField(t, fn, "echo-module", "spec", "module", "configMap", "name")
	assertField(t, fn, "module.wasm", "spec", "module", "configMap", "key")
	assertField(t, fn, "PerRequest", "spec", "isolation")
	assertField(t, fn, "2s", "spec", "limits", "timeout")

	// A new module and no flags: the module changes, the flags' fields go
	// back to the API defaults.
	writeFile(t, module, string(v2))
	mustSucceed(t, c.cairn(t, "fn", "deploy", "echo", "-n", ns, "-f", module))
	if cm, err = c.kube.CoreV1().ConfigMaps(ns).Get(t.Context(), "echo-module", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cm.BinaryData["module.wasm"], v2) || cm.Annotations[digestAnnotation] != digest(v2) {
		t.Errorf("after the update: ConfigMap binaryData %q, annotations %v", cm.BinaryData["module.wasm"], cm.Annotations)
	}
	if fn, err = c.get(t, functions, ns, "echo"); err != nil {
		t.Fatal(err)
	}
	assertField(t, fn, "Pooled", "spec", "isolation")
	assertField(t, fn, "5s", "spec", "limits", "timeout")
}

func TestFnDeployDryRunDoesNotPersist(t *testing.T) {
	c := cluster(t)
	c.installFunctionCRD(t)
	ns := c.namespace(t)
	module := filepath.Join(t.TempDir(), "m.wasm")
	writeFile(t, module, "\x00asm\x01\x00\x00\x00")
	r := mustSucceed(t, c.cairn(t, "fn", "deploy", "dry", "-n", ns, "-f", module, "--dry-run=server"))
	if !strings.Contains(r.stdout, "(server dry run)") {
		t.Errorf("stdout %q does not mention the dry run", r.stdout)
	}
	if _, err := c.get(t, functions, ns, "dry"); !apierrors.IsNotFound(err) {
		t.Errorf("Function after a dry run: %v, want not found", err)
	}
}

func TestFnDeployWithoutCRDStoresNothing(t *testing.T) {
	c := cluster(t)
	ns := c.namespace(t)
	module := filepath.Join(t.TempDir(), "m.wasm")
	writeFile(t, module, "\x00asm\x01\x00\x00\x00")
	r := mustFail(t, c.cairn(t, "fn", "deploy", "nocrd", "-n", ns, "-f", module))
	if !strings.Contains(r.stderr, "ensure the Cairn CRDs are installed first") {
		t.Errorf("stderr %q, want a hint to install the CRDs", r.stderr)
	}
	if _, err := c.kube.CoreV1().ConfigMaps(ns).Get(t.Context(), "nocrd-module", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap stored without the CRD: %v", err)
	}
}

func TestFnDeployErrors(t *testing.T) {
	dir := t.TempDir()
	notWasm := filepath.Join(dir, "module.txt")
	big := filepath.Join(dir, "big.wasm")
	if err := os.WriteFile(notWasm, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, append([]byte("\x00asm\x01\x00\x00\x00"), make([]byte, 1<<20)...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fn", "deploy", "x"}, `required flag(s) "filename" not set`},
		{[]string{"fn", "deploy", "-f", notWasm}, "accepts 1 arg(s), received 0"},
		{[]string{"fn", "deploy", "x", "-f", notWasm, "--isolation", "shared"}, `invalid --isolation "shared"`},
		{[]string{"fn", "deploy", "x", "-f", notWasm, "--timeout", "5 seconds"}, `invalid --timeout "5 seconds"`},
		{[]string{"fn", "deploy", "x", "-f", notWasm}, "is not a WebAssembly binary module"},
		{[]string{"fn", "deploy", "x", "-f", big}, "over the 1048576 a ConfigMap holds"},
		{[]string{"fn", "deploy", "x", "-f", filepath.Join(dir, "missing.wasm")}, "no such file"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			streams, _, _, errOut := genericiooptions.NewTestIOStreams()
			// No cluster is contacted before these checks: an unreachable
			// server proves it.
			code := Run(t.Context(), append([]string{"--server", "https://127.0.0.1:1"}, tc.args...), streams)
			if code == 0 || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("exit %d, stderr %q, want an error containing %q", code, errOut.String(), tc.want)
			}
		})
	}
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func assertField(t *testing.T, obj *unstructured.Unstructured, want string, path ...string) {
	t.Helper()
	got, _, err := unstructured.NestedString(obj.Object, path...)
	if err != nil || got != want {
		t.Errorf("%s = %q (%v), want %q", strings.Join(path, "."), got, err, want)
	}
}
