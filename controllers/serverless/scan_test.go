package serverless

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/scan/report"
	"github.com/cairn-platform/cairn/dataplane/scan/scanapi"
)

// fakeScanner answers ScanSBOM with rep or err, counting calls.
type fakeScanner struct {
	rep   report.Report
	err   error
	calls int
	got   string
}

func (f *fakeScanner) ScanImage(context.Context, string) (report.Report, error) {
	return report.Report{}, errors.New("not used")
}

func (f *fakeScanner) ScanSBOM(_ context.Context, sbom io.Reader) (report.Report, error) {
	f.calls++
	b, _ := io.ReadAll(sbom)
	f.got = string(b)
	return f.rep, f.err
}

func medium() *common.ScanPolicy {
	s := common.Severity("Medium")
	return &common.ScanPolicy{FailOn: &s}
}

func vulnerable() report.Report {
	return report.Report{Findings: []report.Finding{{ID: "CVE-2099-0002", Severity: report.Medium, Package: "github.com/google/uuid", Version: "v1.6.0", FixedIn: []string{"1.6.1"}}}}
}

func gatedFunction() *serverlessv1alpha1.Function {
	return &serverlessv1alpha1.Function{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "fn", Generation: 2},
		Spec: serverlessv1alpha1.FunctionSpec{
			SBOM:       &common.KeySelector{Name: "fn-sbom", Key: "sbom.json"},
			ScanPolicy: medium(),
		},
	}
}

func newTestReconciler(t *testing.T, scanner *fakeScanner, objs ...*corev1.ConfigMap) *FunctionReconciler {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	b := fake.NewClientBuilder().WithScheme(scheme)
	for _, o := range objs {
		b = b.WithObjects(o)
	}
	r := &FunctionReconciler{Client: b.Build()}
	if scanner != nil {
		r.Scanner = scanner
	}
	return r
}

func sbomConfigMap(data string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "fn-sbom"}, Data: map[string]string{"sbom.json": data}}
}

func TestScanGate(t *testing.T) {
	ctx := context.Background()

	t.Run("blocked, then cached", func(t *testing.T) {
		sc := &fakeScanner{rep: vulnerable()}
		r := newTestReconciler(t, sc, sbomConfigMap(`{"bomFormat":"CycloneDX"}`))
		fn := gatedFunction()
		out, err := r.scanGate(ctx, fn, "sha256:aaaa")
		if err != nil {
			t.Fatal(err)
		}
		if out.reason != ReasonScanBlocked || !strings.Contains(out.problem, "CVE-2099-0002 (Medium)") || !strings.Contains(out.problem, "fn-sbom/sbom.json") {
			t.Errorf("outcome = %+v, want ScanBlocked naming the CVE and the SBOM", out)
		}
		if out.result == nil || !strings.HasPrefix(out.result.Digest, "sha256:") || len(out.result.Blocking) != 1 || out.result.Findings["Medium"] != 1 {
			t.Errorf("result = %+v", out.result)
		}
		if sc.got != `{"bomFormat":"CycloneDX"}` || out.requeue != DefaultRescanInterval {
			t.Errorf("scanner got %q, requeue %v", sc.got, out.requeue)
		}
		fn.Status.Scan = out.result
		again, err := r.scanGate(ctx, fn, "sha256:aaaa")
		if err != nil {
			t.Fatal(err)
		}
		if sc.calls != 1 || again.problem != out.problem {
			t.Errorf("second gate: %d scans, %+v; want the cached verdict", sc.calls, again)
		}
		if _, err := r.scanGate(ctx, fn, "sha256:bbbb"); err != nil || sc.calls != 2 {
			t.Errorf("a new module digest must be scanned again: %v, %d scans", err, sc.calls)
		}
		r.RescanInterval = time.Nanosecond
		if _, err := r.scanGate(ctx, fn, "sha256:bbbb"); err != nil || sc.calls != 3 {
			t.Errorf("a due rescan must scan again: %v, %d scans", err, sc.calls)
		}
	})

	t.Run("passes", func(t *testing.T) {
		sc := &fakeScanner{rep: report.Report{Findings: []report.Finding{{ID: "CVE-2099-0009", Severity: report.Low, Package: "p", Version: "1"}}}}
		r := newTestReconciler(t, sc, sbomConfigMap("{}"))
		out, err := r.scanGate(ctx, gatedFunction(), "sha256:aaaa")
		if err != nil {
			t.Fatal(err)
		}
		if out.problem != "" || !strings.Contains(out.passed, "no findings at or above Medium") || out.result.Findings["Low"] != 1 {
			t.Errorf("outcome = %+v, want a pass", out)
		}
	})

	t.Run("sbom missing", func(t *testing.T) {
		r := newTestReconciler(t, &fakeScanner{})
		out, err := r.scanGate(ctx, gatedFunction(), "sha256:aaaa")
		if err != nil || out.reason != ReasonSBOMNotFound || !strings.Contains(out.problem, `ConfigMap "fn-sbom" not found`) {
			t.Errorf("outcome = %+v, %v", out, err)
		}
		r = newTestReconciler(t, &fakeScanner{}, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "fn-sbom"}})
		out, err = r.scanGate(ctx, gatedFunction(), "sha256:aaaa")
		if err != nil || out.reason != ReasonSBOMNotFound || !strings.Contains(out.problem, `has no key "sbom.json"`) {
			t.Errorf("outcome = %+v, %v", out, err)
		}
	})

	t.Run("no scanner fails closed", func(t *testing.T) {
		r := newTestReconciler(t, nil, sbomConfigMap("{}"))
		out, err := r.scanGate(ctx, gatedFunction(), "sha256:aaaa")
		if err != nil || out.reason != ReasonScanUnavailable || out.keepServing || out.requeue != scanRetry || !strings.Contains(out.problem, "--scanner-url") {
			t.Errorf("outcome = %+v, %v", out, err)
		}
	})

	t.Run("invalid sbom", func(t *testing.T) {
		sc := &fakeScanner{err: &scanapi.Error{Code: scanapi.CodeInvalidSBOM, Message: "not an SBOM"}}
		r := newTestReconciler(t, sc, sbomConfigMap("{}"))
		out, err := r.scanGate(ctx, gatedFunction(), "sha256:aaaa")
		if err != nil || out.reason != ReasonScanFailed || !strings.Contains(out.problem, "not an SBOM") {
			t.Errorf("outcome = %+v, %v", out, err)
		}
	})

	t.Run("scanner down keeps a passing module", func(t *testing.T) {
		sc := &fakeScanner{rep: report.Report{}}
		r := newTestReconciler(t, sc, sbomConfigMap("{}"))
		fn := gatedFunction()
		out, err := r.scanGate(ctx, fn, "sha256:aaaa")
		if err != nil || out.problem != "" {
			t.Fatalf("outcome = %+v, %v", out, err)
		}
		fn.Status.Digest, fn.Status.Scan = "sha256:aaaa", out.result
		fn.Status.Conditions = []metav1.Condition{{Type: common.ConditionAccepted, Status: metav1.ConditionTrue, ObservedGeneration: 2}}
		r.RescanInterval = time.Nanosecond
		sc.err = errors.New("connection refused")
		out, err = r.scanGate(ctx, fn, "sha256:aaaa")
		if err != nil || out.reason != ReasonScanUnavailable || !out.keepServing {
			t.Errorf("outcome = %+v, %v; want ScanUnavailable keeping the module", out, err)
		}
		// Another module is not loaded unscanned.
		out, err = r.scanGate(ctx, fn, "sha256:bbbb")
		if err != nil || out.reason != ReasonScanUnavailable || out.keepServing {
			t.Errorf("new module: outcome = %+v, %v; want ScanUnavailable failing closed", out, err)
		}
	})
}

func TestGatePassed(t *testing.T) {
	fn := gatedFunction()
	if !GatePassed(&serverlessv1alpha1.Function{}) {
		t.Error("a Function without scanPolicy must pass")
	}
	if GatePassed(fn) {
		t.Error("no status: must not pass")
	}
	fn.Status.Conditions = []metav1.Condition{{Type: common.ConditionAccepted, Status: metav1.ConditionTrue, ObservedGeneration: 2}}
	if GatePassed(fn) {
		t.Error("no status.scan: must not pass")
	}
	fn.Status.Scan = &common.ScanResult{Digest: "sha256:x"}
	if !GatePassed(fn) {
		t.Error("Accepted at the generation with a scan: must pass")
	}
	fn.Generation = 3
	if GatePassed(fn) {
		t.Error("Accepted for an older generation: must not pass")
	}
	fn.Status.Conditions[0].ObservedGeneration, fn.Status.Conditions[0].Status = 3, metav1.ConditionFalse
	if GatePassed(fn) {
		t.Error("Accepted False: must not pass")
	}
}

func TestNewGateProblem(t *testing.T) {
	prev := &metav1.Condition{Reason: ReasonScanBlocked, Message: "m"}
	for _, c := range []struct {
		reason, msg string
		want        bool
	}{
		{ReasonScanBlocked, "m", false},
		{ReasonScanBlocked, "other findings", true},
		{ReasonScanUnavailable, "x", true},
		{ReasonModuleNotFound, "x", false},
	} {
		if got := newGateProblem(prev, c.reason, c.msg); got != c.want {
			t.Errorf("newGateProblem(%s, %q) = %v, want %v", c.reason, c.msg, got, c.want)
		}
	}
	if !newGateProblem(nil, ReasonScanBlocked, "m") {
		t.Error("a first verdict is new")
	}
	if minRequeue(0, time.Second) != time.Second || minRequeue(time.Minute, time.Second) != time.Second || minRequeue(time.Second, 0) != time.Second {
		t.Error("minRequeue")
	}
}
