package gitops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/scan/report"
	"github.com/cairn-platform/cairn/dataplane/scan/scanapi"
	"github.com/cairn-platform/cairn/internal/scangate"
)

func objects(t *testing.T, docs ...string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, d := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(d), &u.Object); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

func TestWorkloadImages(t *testing.T) {
	objs := objects(t,
		`{apiVersion: apps/v1, kind: Deployment, spec: {template: {spec: {initContainers: [{image: "init:1"}], containers: [{image: "app:1"}, {image: "sidecar:2"}]}}}}`,
		`{apiVersion: batch/v1, kind: CronJob, spec: {jobTemplate: {spec: {template: {spec: {containers: [{image: "job:3"}]}}}}}}`,
		`{apiVersion: v1, kind: Pod, spec: {containers: [{image: "app:1"}], ephemeralContainers: [{image: "debug:4"}]}}`,
		`{apiVersion: v1, kind: ConfigMap, data: {image: "not-an-image"}}`,
		`{apiVersion: argoproj.io/v1alpha1, kind: Rollout, spec: {template: {spec: {containers: [{image: "rollout:5"}]}}}}`,
	)
	got := strings.Join(workloadImages(objs), " ")
	if want := "app:1 debug:4 init:1 job:3 rollout:5 sidecar:2"; got != want {
		t.Errorf("images = %s, want %s", got, want)
	}
}

type fakeScanner map[string]report.Report

func (f fakeScanner) ScanSBOM(context.Context, io.Reader) (report.Report, error) {
	return report.Report{}, errors.New("not used")
}

func (f fakeScanner) ScanImage(_ context.Context, image string) (report.Report, error) {
	r, ok := f[image]
	if !ok {
		return report.Report{}, &scanapi.Error{Code: scanapi.CodeImageNotFound, Message: "image " + image + " not found"}
	}
	return r, nil
}

func TestScanGate(t *testing.T) {
	vuln := report.Report{Digest: "sha256:0123456789abcdef0123", DBBuilt: time.Unix(1_800_000_000, 0), Findings: []report.Finding{
		{ID: "CVE-2099-0001", Severity: report.High, Package: "musl", Version: "1.2.3-r0", FixedIn: []string{"1.2.5-r0"}},
		{ID: "CVE-2099-0002", Severity: report.Low, Package: "musl", Version: "1.2.3-r0"},
	}}
	objs := objects(t, `{apiVersion: apps/v1, kind: Deployment, spec: {template: {spec: {containers: [{image: "reg/app:1"}, {image: "reg/clean:1"}]}}}}`)
	high := common.Severity("High")
	r := &GitRepoReconciler{Scanner: fakeScanner{"reg/app:1": vuln, "reg/clean:1": {Digest: "sha256:ff"}}}

	res, err := r.scanGate(context.Background(), &common.ScanPolicy{FailOn: &high}, objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.blocked) != 1 || !strings.Contains(res.blocked[0], "image reg/app:1 (sha256:0123456789ab)") || !strings.Contains(res.blocked[0], "CVE-2099-0001 (High) in musl 1.2.3-r0, fixed in 1.2.5-r0") {
		t.Errorf("blocked = %q", res.blocked)
	}
	if len(res.scans) != 2 || res.scans[0].Findings["High"] != 1 || res.scans[0].Findings["Low"] != 1 || len(res.scans[0].Blocking) != 1 || res.scans[1].Findings != nil {
		t.Errorf("scans = %+v", res.scans)
	}

	ignore := &common.ScanPolicy{FailOn: &high, Ignore: []common.IgnoredVulnerability{{ID: "CVE-2099-0001", Reason: "not reachable"}}}
	if res, err := r.scanGate(context.Background(), ignore, objs); err != nil || len(res.blocked) != 0 || strings.Join(res.scans[0].Ignored, ",") != "CVE-2099-0001" {
		t.Errorf("ignored finding: blocked = %q, scans = %+v, err = %v", res.blocked, res.scans, err)
	}
	expired := ignore.DeepCopy()
	expired.Ignore[0].Until = &metav1.Time{Time: time.Now().Add(-time.Hour)}
	if res, _ := r.scanGate(context.Background(), expired, objs); len(res.blocked) != 1 || !strings.Contains(res.blocked[0], "expired") {
		t.Errorf("an expired ignore still ignores: %q", res.blocked)
	}
	if res, _ := r.scanGate(context.Background(), &common.ScanPolicy{}, objs); len(res.blocked) != 0 || len(res.scans) != 2 {
		t.Errorf("no failOn must report without blocking: %+v", res)
	}

	missing := objects(t, `{apiVersion: v1, kind: Pod, spec: {containers: [{image: "reg/missing:1"}]}}`)
	_, err = r.scanGate(context.Background(), &common.ScanPolicy{FailOn: &high}, missing)
	if err == nil || scangate.Reason(err) != ReasonScanFailed {
		t.Errorf("missing image: err = %v (reason %s), want ScanFailed", err, scangate.Reason(err))
	}
	if scangate.Reason(errors.New("connection refused")) != ReasonScanUnavailable {
		t.Error("a scanner outage is not ScanUnavailable")
	}
	if _, err := (&GitRepoReconciler{}).scanGate(context.Background(), &common.ScanPolicy{FailOn: &high}, objs); err == nil || !strings.Contains(err.Error(), "--scanner-url") {
		t.Errorf("no scanner: err = %v, want it to fail closed", err)
	}
	if res, err := (&GitRepoReconciler{}).scanGate(context.Background(), &common.ScanPolicy{FailOn: &high}, objects(t, `{apiVersion: v1, kind: ConfigMap}`)); err != nil || len(res.scans) != 0 {
		t.Errorf("no images needs no scanner: %+v, %v", res, err)
	}
}

func TestPinDigests(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	objs := objects(t,
		`{apiVersion: apps/v1, kind: Deployment, spec: {replicas: 2, template: {spec: {initContainers: [{name: i, image: "init:1"}], containers: [{name: a, image: "app:1"}, {name: b, image: "other:2"}, {name: c, image: "app:1@sha256:ffff"}]}}}}`,
		`{apiVersion: batch/v1, kind: CronJob, spec: {schedule: "* * * * *", jobTemplate: {spec: {template: {spec: {containers: [{name: j, image: "app:1"}]}}}}}}`,
		`{apiVersion: v1, kind: Pod, spec: {containers: [{name: p, image: "app:1"}]}}`,
		`{apiVersion: v1, kind: ConfigMap, data: {image: "app:1"}}`,
	)
	pinDigests(objs, map[string]string{"app:1": d, "init:1": d})
	image := func(o int, path ...string) []string {
		var out []string
		cs, _, _ := unstructured.NestedSlice(objs[o].Object, path...)
		for _, c := range cs {
			out = append(out, c.(map[string]any)["image"].(string))
		}
		return out
	}
	tmpl := []string{"spec", "template", "spec"}
	if got := strings.Join(image(0, append(tmpl, "containers")...), " "); got != "app:1@"+d+" other:2 app:1@sha256:ffff" {
		t.Errorf("Deployment containers = %s", got)
	}
	if got := image(0, append(tmpl, "initContainers")...); len(got) != 1 || got[0] != "init:1@"+d {
		t.Errorf("Deployment initContainers = %v", got)
	}
	if got := image(1, "spec", "jobTemplate", "spec", "template", "spec", "containers"); len(got) != 1 || got[0] != "app:1@"+d {
		t.Errorf("CronJob containers = %v", got)
	}
	if got := image(2, "spec", "containers"); len(got) != 1 || got[0] != "app:1@"+d {
		t.Errorf("Pod containers = %v", got)
	}
	if _, found, _ := unstructured.NestedSlice(objs[2].Object, "spec", "ephemeralContainers"); found {
		t.Error("pinning added an ephemeralContainers field")
	}
	if r, _, _ := unstructured.NestedFieldNoCopy(objs[0].Object, "spec", "replicas"); fmt.Sprint(r) != "2" {
		t.Errorf("replicas = %v, the rest of the spec must stay", r)
	}
	if v, _, _ := unstructured.NestedString(objs[3].Object, "data", "image"); v != "app:1" {
		t.Errorf("a ConfigMap value was rewritten: %s", v)
	}
}
