package integration

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
	"github.com/cairn-platform/cairn/controllers"
	"github.com/cairn-platform/cairn/dataplane/scan/scanapi"
	"github.com/cairn-platform/cairn/dataplane/scan/scantest"
	xdsserver "github.com/cairn-platform/cairn/dataplane/xds/server"
)

// moduleSBOM is a minimal CycloneDX SBOM of a wasm module built with one Go
// dependency, github.com/google/uuid at version.
func moduleSBOM(version string) string {
	return fmt.Sprintf(`{
  "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
  "metadata": {"component": {"type": "application", "name": "hello-fn"}},
  "components": [{
    "type": "library", "name": %q, "version": %q,
    "purl": "pkg:golang/%s@%s"
  }]
}`, scantest.DefaultGoModule, version, scantest.DefaultGoModule, version)
}

// TestFunctionScanGate: a Function with a scanPolicy is scanned from the
// SBOM attached to its module, by the real scanner process against a
// database with a planted CVE in github.com/google/uuid v1.6.0 (Medium).
// The vulnerable SBOM blocks the Function (Accepted and Ready False
// ScanBlocked, an Event, status.scan) and a real function host does not
// serve it; an SBOM listing the fixed v1.6.1 lets it through and the host
// serves it; the vulnerable SBOM again makes the host stop serving it.
func TestFunctionScanGate(t *testing.T) {
	e := requireEnv(t)
	scannerURL := startScanner(t)
	runManager(t, controllers.Config{
		XDS:          xdsserver.New(testLogger(t)),
		ImageScanner: &scanapi.Client{BaseURL: scannerURL, HTTP: &http.Client{Timeout: 2 * time.Minute}},
	})
	ctx := context.Background()
	dir := t.TempDir()
	bin := buildCommand(t, dir, "funchost")
	ns := newNamespace(t)
	host := startFunchost(t, bin, funchostKubeconfig(t, dir), filepath.Join(dir, "cache"), "scan-host", ns)
	served := func(ctx context.Context) (int, string, error) {
		return httpDo(ctx, http.MethodPost, "http://"+host.httpAddr+"/fn/"+ns+"/hello/", strings.NewReader("x"))
	}

	module := constModule("hello from a scanned module")
	for _, cm := range []*corev1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hello-module"}, BinaryData: map[string][]byte{"hello.wasm": module}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hello-sbom"}, Data: map[string]string{"sbom.cdx.json": moduleSBOM(scantest.DefaultGoModuleVersion)}},
	} {
		if err := e.Client.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	medium := common.Severity("Medium")
	createFunction(t, ns, "hello", "hello-module", "hello.wasm", func(s *serverlessv1alpha1.FunctionSpec) {
		s.SBOM = &common.KeySelector{Name: "hello-sbom", Key: "sbom.cdx.json"}
		s.ScanPolicy = &common.ScanPolicy{FailOn: &medium}
	})
	key := types.NamespacedName{Namespace: ns, Name: "hello"}
	setSBOM := func(t *testing.T, version string) {
		t.Helper()
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hello-sbom"}}
		patch := fmt.Sprintf(`{"data":{"sbom.cdx.json":%q}}`, moduleSBOM(version))
		if err := e.Client.Patch(ctx, cm, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
			t.Fatal(err)
		}
	}
	notServed := func(t *testing.T) {
		t.Helper()
		// The host has seen the Function (its status changed long ago) and
		// does not serve it; asked a few times to leave room for a late load.
		for range 3 {
			code, body, err := served(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if code != http.StatusNotFound {
				t.Fatalf("the host answered %d %q for a blocked Function, want 404", code, body)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	t.Run("vulnerable SBOM blocks the Function", func(t *testing.T) {
		fn := waitFunctionAccepted(t, key, metav1.ConditionFalse, "ScanBlocked", scantest.GoVulnID)
		acc := meta.FindStatusCondition(fn.Status.Conditions, "Accepted")
		t.Logf("Accepted: %s", acc.Message)
		for _, want := range []string{"hello-sbom/sbom.cdx.json", scantest.DefaultGoModule + " " + scantest.DefaultGoModuleVersion, "(Medium)", "do not load"} {
			if !strings.Contains(acc.Message, want) {
				t.Errorf("Accepted message lacks %q", want)
			}
		}
		ready := meta.FindStatusCondition(fn.Status.Conditions, "Ready")
		if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != "ScanBlocked" {
			t.Errorf("Ready = %+v, want False ScanBlocked", ready)
		}
		s := fn.Status.Scan
		if s == nil || !strings.HasPrefix(s.Digest, "sha256:") || s.Findings["Medium"] != 1 || len(s.Blocking) != 1 ||
			!strings.HasPrefix(s.Blocking[0], scantest.GoVulnID) || s.DBBuilt == nil {
			t.Errorf("status.scan = %+v, want the Medium CVE blocking", s)
		}
		if fn.Status.Digest != "" {
			t.Errorf("status.digest = %q for a blocked module; the hosts would load it", fn.Status.Digest)
		}
		requireEvents(t, fn, "ScanBlocked")
		notServed(t)
	})

	t.Run("fixed SBOM lets it through", func(t *testing.T) {
		setSBOM(t, "v1.6.1")
		fn := waitFunctionAccepted(t, key, metav1.ConditionTrue, "Accepted", "passed scanPolicy")
		if s := fn.Status.Scan; s == nil || len(s.Blocking) != 0 || len(s.Findings) != 0 {
			t.Errorf("status.scan = %+v, want no findings", s)
		}
		waitReady(t, ns, "hello", metav1.ConditionTrue, "Compiled", digestOf(module))
		eventually(t, 20*time.Second, func(ctx context.Context) error {
			code, body, err := served(ctx)
			if err != nil {
				return err
			}
			if code != http.StatusOK || body != "hello from a scanned module" {
				return fmt.Errorf("host answered %d %q", code, body)
			}
			return nil
		})
	})

	t.Run("vulnerable SBOM again unloads it", func(t *testing.T) {
		setSBOM(t, scantest.DefaultGoModuleVersion)
		waitFunctionAccepted(t, key, metav1.ConditionFalse, "ScanBlocked", scantest.GoVulnID)
		eventually(t, 20*time.Second, func(ctx context.Context) error {
			code, body, err := served(ctx)
			if err != nil {
				return err
			}
			if code != http.StatusNotFound {
				return fmt.Errorf("host still answers %d %q", code, body)
			}
			return nil
		})
	})
}

// TestFunctionScanGateFailsClosed: without a scanner the gated Function is
// not accepted (ScanUnavailable); a missing SBOM is named; admission refuses
// a scanPolicy without an SBOM, and a VEX document.
func TestFunctionScanGateFailsClosed(t *testing.T) {
	e := requireEnv(t)
	runManager(t, controllers.Config{XDS: xdsserver.New(testLogger(t))})
	ctx := context.Background()
	ns := newNamespace(t)
	if err := e.Client.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "m"},
		BinaryData: map[string][]byte{"m.wasm": constModule("x")},
		Data:       map[string]string{"sbom.json": moduleSBOM("v1.6.1")},
	}); err != nil {
		t.Fatal(err)
	}
	high := common.Severity("High")
	gated := func(sbomKey string) func(*serverlessv1alpha1.FunctionSpec) {
		return func(s *serverlessv1alpha1.FunctionSpec) {
			s.SBOM = &common.KeySelector{Name: "m", Key: sbomKey}
			s.ScanPolicy = &common.ScanPolicy{FailOn: &high}
		}
	}
	createFunction(t, ns, "noscanner", "m", "m.wasm", gated("sbom.json"))
	fn := waitFunctionAccepted(t, types.NamespacedName{Namespace: ns, Name: "noscanner"}, metav1.ConditionFalse, "ScanUnavailable", "--scanner-url")
	if fn.Status.Digest != "" {
		t.Errorf("status.digest = %q without a scan", fn.Status.Digest)
	}
	requireEvents(t, fn, "ScanUnavailable")

	createFunction(t, ns, "nosbom", "m", "m.wasm", gated("missing.json"))
	waitFunctionAccepted(t, types.NamespacedName{Namespace: ns, Name: "nosbom"}, metav1.ConditionFalse, "SBOMNotFound", `no key "missing.json"`)

	for name, edit := range map[string]func(*serverlessv1alpha1.FunctionSpec){
		"scanPolicy needs spec.sbom": func(s *serverlessv1alpha1.FunctionSpec) {
			s.ScanPolicy = &common.ScanPolicy{FailOn: &high}
		},
		"scanPolicy.vex is not supported": func(s *serverlessv1alpha1.FunctionSpec) {
			gated("sbom.json")(s)
			s.ScanPolicy.VEX = &common.KeySelector{Name: "m", Key: "vex.json"}
		},
	} {
		fn := &serverlessv1alpha1.Function{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "refused"},
			Spec: serverlessv1alpha1.FunctionSpec{
				Module:    serverlessv1alpha1.ModuleSource{ConfigMap: &common.KeySelector{Name: "m", Key: "m.wasm"}},
				Placement: serverlessv1alpha1.Placement{Cluster: true},
			},
		}
		edit(&fn.Spec)
		if err := e.Client.Create(ctx, fn); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("creating a Function with %s: %v", name, err)
		}
	}
}

// waitFunctionAccepted waits for the Function's Accepted condition, at its
// generation, with a message containing msg.
func waitFunctionAccepted(t *testing.T, key types.NamespacedName, status metav1.ConditionStatus, reason, msg string) *serverlessv1alpha1.Function {
	t.Helper()
	var fn serverlessv1alpha1.Function
	eventually(t, 60*time.Second, func(ctx context.Context) error {
		if err := env.Client.Get(ctx, key, &fn); err != nil {
			return err
		}
		c := meta.FindStatusCondition(fn.Status.Conditions, "Accepted")
		if c == nil || c.Status != status || c.Reason != reason || !strings.Contains(c.Message, msg) || c.ObservedGeneration != fn.Generation {
			return fmt.Errorf("%s Accepted = %+v; want %s/%s with %q", key, c, status, reason, msg)
		}
		return nil
	})
	return &fn
}
