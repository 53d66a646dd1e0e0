package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/cairn-platform/cairn/internal/testenv"
)

var (
	env      *testenv.Env
	startErr error
	nsSeq    atomic.Int64
)

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") != "" {
		env, startErr = testenv.Start()
	} else {
		startErr = testenv.ErrNoAssets
	}
	code := m.Run()
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}
	os.Exit(code)
}

type fixture struct {
	t       *testing.T
	ctx     context.Context
	applier *Applier
	dyn     dynamic.Interface
	ns      string // unique per test
	group   string // unique CRD group per test
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if errors.Is(startErr, testenv.ErrNoAssets) {
		t.Skip(startErr.Error())
	}
	if startErr != nil {
		t.Fatalf("control plane did not start: %v", startErr)
	}
	a, err := New(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	n := nsSeq.Add(1)
	return &fixture{t: t, ctx: ctx, applier: a, dyn: dyn, ns: fmt.Sprintf("apply-%d", n), group: fmt.Sprintf("t%d.apply.cairn.test", n)}
}

var (
	gvrConfigMap  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrNamespace  = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	gvrDeployment = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

// render writes files to a fresh directory and renders it.
func (f *fixture) render(files map[string]string) []*unstructured.Unstructured {
	f.t.Helper()
	dir := f.t.TempDir()
	for name, content := range files {
		content = strings.ReplaceAll(content, "NS", f.ns)
		content = strings.ReplaceAll(content, "GROUP", f.group)
		writeFiles(f.t, dir, map[string]string{name: content})
	}
	objs, err := Render(dir)
	if err != nil {
		f.t.Fatal(err)
	}
	return objs
}

// get returns the live object or nil.
func (f *fixture) get(gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	f.t.Helper()
	var r dynamic.ResourceInterface = f.dyn.Resource(gvr)
	if ns != "" {
		r = f.dyn.Resource(gvr).Namespace(ns)
	}
	u, err := r.Get(f.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

func (f *fixture) createNamespace() {
	f.t.Helper()
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": f.ns}}}
	if _, err := f.dyn.Resource(gvrNamespace).Create(f.ctx, ns, metav1.CreateOptions{}); err != nil {
		f.t.Fatal(err)
	}
}

func names(objs []Object) []string {
	out := []string{}
	for _, o := range objs {
		out = append(out, o.Kind+"/"+o.Name)
	}
	slices.Sort(out)
	return out
}

func expect(t *testing.T, what string, got []Object, want ...string) {
	t.Helper()
	slices.Sort(want)
	if want == nil {
		want = []string{}
	}
	if g := names(got); !slices.Equal(g, want) {
		t.Errorf("%s = %v, want %v", what, g, want)
	}
}

const (
	namespaceYAML = `apiVersion: v1
kind: Namespace
metadata: {name: NS}
`
	configMapYAML = `apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: NS}
data: {color: blue}
`
	extraConfigMapYAML = `apiVersion: v1
kind: ConfigMap
metadata: {name: extra, namespace: NS}
data: {a: b}
`
	keptConfigMapYAML = `apiVersion: v1
kind: ConfigMap
metadata:
  name: kept
  namespace: NS
  annotations: {gitops.cairn.dev/prune: disabled}
`
	deploymentYAML = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: NS}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: nginx:1.27}
`
	crdYAML = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.GROUP}
spec:
  group: GROUP
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
`
	widgetYAML = `apiVersion: GROUP/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3}
`
)

func TestApplyLifecycle(t *testing.T) {
	f := newFixture(t)
	files := map[string]string{
		"ns.yaml":     namespaceYAML,
		"cm.yaml":     configMapYAML,
		"extra.yaml":  extraConfigMapYAML,
		"kept.yaml":   keptConfigMapYAML,
		"deploy.yaml": deploymentYAML,
		"crd.yaml":    crdYAML,
		"widget.yaml": widgetYAML, // no namespace: DefaultNamespace
	}
	opts := Options{FieldManager: "test", DefaultNamespace: f.ns, Prune: true}

	// Create everything, including a CR whose CRD and Namespace are new.
	res, err := f.applier.Apply(f.ctx, f.render(files), nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"ConfigMap/extra", "ConfigMap/kept", "ConfigMap/settings", "CustomResourceDefinition/widgets." + f.group, "Deployment/web", "Namespace/" + f.ns, "Widget/w1"}
	expect(t, "created: Applied", res.Applied, all...)
	expect(t, "created: Unchanged", res.Unchanged)
	expect(t, "created: Inventory", res.Inventory, all...)
	// Order: CRDs, Namespaces, cluster-scoped, namespaced.
	if k := res.Inventory[0].Kind; k != "CustomResourceDefinition" {
		t.Errorf("first applied %s, want the CRD", k)
	}
	if k := res.Inventory[1].Kind; k != "Namespace" {
		t.Errorf("second applied %s, want the Namespace", k)
	}
	widget := f.get(schema.GroupVersionResource{Group: f.group, Version: "v1", Resource: "widgets"}, f.ns, "w1")
	if widget == nil {
		t.Fatal("widget not created")
	}
	if cm := f.get(gvrConfigMap, f.ns, "settings"); cm == nil || cm.GetManagedFields()[0].Manager != "test" {
		t.Fatalf("configmap not applied by the field manager: %v", cm)
	}

	// Re-apply: nothing changes.
	res, err = f.applier.Apply(f.ctx, f.render(files), res.Inventory, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "re-applied: Applied", res.Applied)
	expect(t, "re-applied: Unchanged", res.Unchanged, all...)

	// Change one ConfigMap.
	files["cm.yaml"] = strings.Replace(configMapYAML, "blue", "green", 1)
	res, err = f.applier.Apply(f.ctx, f.render(files), res.Inventory, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "changed: Applied", res.Applied, "ConfigMap/settings")
	if got := f.get(gvrConfigMap, f.ns, "settings").Object["data"]; fmt.Sprint(got) != "map[color:green]" {
		t.Errorf("data = %v", got)
	}

	// Remove two files: one is pruned, the other has pruning disabled.
	delete(files, "extra.yaml")
	delete(files, "kept.yaml")
	res, err = f.applier.Apply(f.ctx, f.render(files), res.Inventory, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "removed: Pruned", res.Pruned, "ConfigMap/extra")
	expect(t, "removed: Inventory", res.Inventory, "ConfigMap/settings", "CustomResourceDefinition/widgets."+f.group, "Deployment/web", "Namespace/"+f.ns, "Widget/w1")
	if f.get(gvrConfigMap, f.ns, "extra") != nil {
		t.Error("pruned ConfigMap still exists")
	}
	if f.get(gvrConfigMap, f.ns, "kept") == nil {
		t.Error("ConfigMap with pruning disabled was deleted")
	}

	// Without Prune, objects that disappear stay.
	delete(files, "widget.yaml")
	opts.Prune = false
	res, err = f.applier.Apply(f.ctx, f.render(files), res.Inventory, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "no prune: Pruned", res.Pruned)
	if f.get(schema.GroupVersionResource{Group: f.group, Version: "v1", Resource: "widgets"}, f.ns, "w1") == nil {
		t.Error("widget deleted without Prune")
	}
}

func TestApplyInvalidAppliesNothing(t *testing.T) {
	f := newFixture(t)
	f.createNamespace()
	objs := f.render(map[string]string{
		"cm.yaml": configMapYAML,
		"deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: bad, namespace: NS}
spec:
  replicas: three
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: bad}}
    spec: {containers: [{name: c, image: nginx}]}
`,
		"gadget.yaml": "apiVersion: nowhere.cairn.test/v1\nkind: Gadget\nmetadata: {name: g, namespace: NS}\n",
		"good.yaml":   deploymentYAML,
	})
	_, err := f.applier.Apply(f.ctx, objs, nil, Options{})
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("want a ValidationError, got %v", err)
	}
	// Unknown kinds are refused before the dry run; once they are gone, the
	// dry run names the invalid Deployment.
	if msg := err.Error(); !strings.Contains(msg, "nowhere.cairn.test/v1/Gadget/"+f.ns+"/g") || !strings.Contains(msg, "unknown kind Gadget") {
		t.Errorf("error does not name the unknown kind: %v", err)
	}
	objs = slices.DeleteFunc(objs, func(u *unstructured.Unstructured) bool { return u.GetKind() == "Gadget" })
	_, err = f.applier.Apply(f.ctx, objs, nil, Options{})
	if !errors.As(err, &verr) || len(verr.Failures) != 1 {
		t.Fatalf("want one failure, got %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "apps/v1/Deployment/"+f.ns+"/bad") || !strings.Contains(msg, "replicas") {
		t.Errorf("error does not name the bad Deployment: %v", err)
	}
	if f.get(gvrConfigMap, f.ns, "settings") != nil || f.get(gvrDeployment, f.ns, "web") != nil {
		t.Error("valid objects were applied although one was invalid")
	}

	// Objects without a name, duplicates and missing namespaces are refused too.
	objs = f.render(map[string]string{
		"a.yaml": configMapYAML,
		"b.yaml": configMapYAML,
		"c.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: NS}\n",
		"d.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nons}\n",
	})
	_, err = f.applier.Apply(f.ctx, objs, nil, Options{})
	if !errors.As(err, &verr) || len(verr.Failures) != 3 {
		t.Fatalf("want three failures, got %v", err)
	}
	for _, want := range []string{"duplicate of object 1", "object 3 (/v1, Kind=ConfigMap): metadata.name is not set", "v1/ConfigMap/nons: namespaced object without metadata.namespace"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q: %v", want, err)
		}
	}
}

func TestApplyInvalidInNewNamespaceRollsBack(t *testing.T) {
	f := newFixture(t)
	objs := f.render(map[string]string{
		"ns.yaml":  namespaceYAML,
		"cm.yaml":  configMapYAML,
		"crd.yaml": crdYAML,
		"widget.yaml": `apiVersion: GROUP/v1
kind: Widget
metadata: {name: w1, namespace: NS}
spec: {size: "big"}
`,
	})
	_, err := f.applier.Apply(f.ctx, objs, nil, Options{})
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("want a ValidationError, got %v", err)
	}
	if !strings.Contains(err.Error(), f.group+"/v1/Widget/"+f.ns+"/w1") {
		t.Errorf("error does not name the widget: %v", err)
	}
	expect(t, "RolledBack", verr.RolledBack, "CustomResourceDefinition/widgets."+f.group, "Namespace/"+f.ns)
	if f.get(gvrConfigMap, f.ns, "settings") != nil {
		t.Error("configmap created")
	}
	// envtest runs no namespace controller: the namespace stays Terminating.
	if ns := f.get(gvrNamespace, "", f.ns); ns != nil && ns.GetDeletionTimestamp() == nil {
		t.Error("namespace created for validation was not deleted")
	}
}

func TestDriftDetectAndCorrect(t *testing.T) {
	f := newFixture(t)
	files := map[string]string{"ns.yaml": namespaceYAML, "cm.yaml": configMapYAML}
	opts := Options{FieldManager: "test"}
	res, err := f.applier.Apply(f.ctx, f.render(files), nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	inv := res.Inventory

	// Someone edits the live ConfigMap.
	cm := f.get(gvrConfigMap, f.ns, "settings")
	if err := unstructured.SetNestedField(cm.Object, "red", "data", "color"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dyn.Resource(gvrConfigMap).Namespace(f.ns).Update(f.ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}

	// Detect: reported, nothing changed.
	opts.DriftMode = "Detect"
	res, err = f.applier.Apply(f.ctx, f.render(files), inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "detect: Drifted", res.Drifted, "ConfigMap/settings")
	expect(t, "detect: Unchanged", res.Unchanged, "Namespace/"+f.ns)
	expect(t, "detect: Applied", res.Applied)
	expect(t, "detect: Inventory", res.Inventory, names(inv)...)
	if got, _, _ := unstructured.NestedString(f.get(gvrConfigMap, f.ns, "settings").Object, "data", "color"); got != "red" {
		t.Errorf("detect mode changed the live object: color=%s", got)
	}

	// Dry run of correct mode: reported as Applied, still nothing changed.
	opts.DriftMode = DriftModeCorrect
	opts.Force = true
	opts.DryRun = true
	res, err = f.applier.Apply(f.ctx, f.render(files), inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "dry run: Applied", res.Applied, "ConfigMap/settings")
	if got, _, _ := unstructured.NestedString(f.get(gvrConfigMap, f.ns, "settings").Object, "data", "color"); got != "red" {
		t.Errorf("dry run changed the live object: color=%s", got)
	}

	// Correct, without Force: the edit took ownership of the field.
	opts.DryRun = false
	opts.Force = false
	if _, err = f.applier.Apply(f.ctx, f.render(files), inv, opts); err == nil || !strings.Contains(err.Error(), "Force") {
		t.Fatalf("want a conflict error suggesting Force, got %v", err)
	}

	// Correct with Force: fixed.
	opts.Force = true
	res, err = f.applier.Apply(f.ctx, f.render(files), inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "correct: Applied", res.Applied, "ConfigMap/settings")
	if got, _, _ := unstructured.NestedString(f.get(gvrConfigMap, f.ns, "settings").Object, "data", "color"); got != "blue" {
		t.Errorf("correct mode left color=%s", got)
	}

	// And now detect reports no drift.
	opts.DriftMode = DriftModeDetect
	res, err = f.applier.Apply(f.ctx, f.render(files), inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "after correction: Drifted", res.Drifted)
}

func TestHealth(t *testing.T) {
	f := newFixture(t)
	files := map[string]string{"ns.yaml": namespaceYAML, "cm.yaml": configMapYAML, "deploy.yaml": deploymentYAML}
	res, err := f.applier.Apply(f.ctx, f.render(files), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	missing := Object{Version: "v1", Kind: "ConfigMap", Namespace: f.ns, Name: "missing"}
	inv := append(slices.Clone(res.Inventory), missing)

	problems, err := f.applier.Health(f.ctx, inv)
	if err != nil {
		t.Fatal(err)
	}
	wantDeploy := "apps/v1/Deployment/" + f.ns + "/web: waiting for the controller to observe generation 1 (observed 0)"
	wantMissing := "v1/ConfigMap/" + f.ns + "/missing: not found"
	if got := problemStrings(problems); !slices.Equal(got, []string{wantDeploy, wantMissing}) {
		t.Errorf("problems = %q", got)
	}

	// Pretend the deployment controller observed it but no pod is available.
	setStatus := func(status map[string]any) {
		t.Helper()
		d := f.get(gvrDeployment, f.ns, "web")
		d.Object["status"] = status
		if _, err := f.dyn.Resource(gvrDeployment).Namespace(f.ns).UpdateStatus(f.ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setStatus(map[string]any{"observedGeneration": int64(1), "replicas": int64(1), "updatedReplicas": int64(1), "availableReplicas": int64(0)})
	problems, err = f.applier.Health(f.ctx, res.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	if got := problemStrings(problems); !slices.Equal(got, []string{"apps/v1/Deployment/" + f.ns + "/web: waiting for rollout: 0 of 1 updated replicas available"}) {
		t.Errorf("problems = %q", got)
	}

	setStatus(map[string]any{"observedGeneration": int64(1), "replicas": int64(1), "updatedReplicas": int64(1), "availableReplicas": int64(1), "readyReplicas": int64(1)})
	problems, err = f.applier.Health(f.ctx, res.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 0 {
		t.Errorf("problems = %q, want none", problemStrings(problems))
	}
}

func problemStrings(ps []Problem) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func TestUnhealthyKinds(t *testing.T) {
	obj := func(apiVersion, kind string, gen int64, status map[string]any, spec map[string]any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": "x", "generation": gen}}}
		if status != nil {
			u.Object["status"] = status
		}
		if spec != nil {
			u.Object["spec"] = spec
		}
		return u
	}
	cases := []struct {
		name string
		obj  *unstructured.Unstructured
		want string
	}{
		{"configmap", obj("v1", "ConfigMap", 0, nil, nil), ""},
		{"job running", obj("batch/v1", "Job", 1, map[string]any{}, nil), "job not complete"},
		{"job complete", obj("batch/v1", "Job", 1, map[string]any{"conditions": []any{map[string]any{"type": "Complete", "status": "True"}}}, nil), ""},
		{"job failed", obj("batch/v1", "Job", 1, map[string]any{"conditions": []any{map[string]any{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}}}, nil), "job failed: BackoffLimitExceeded"},
		{"sts not ready", obj("apps/v1", "StatefulSet", 2, map[string]any{"observedGeneration": int64(2), "updatedReplicas": int64(3), "readyReplicas": int64(1), "currentRevision": "a", "updateRevision": "a"}, map[string]any{"replicas": int64(3)}), "waiting for rollout: 1 of 3 replicas ready"},
		{"sts ready", obj("apps/v1", "StatefulSet", 2, map[string]any{"observedGeneration": int64(2), "updatedReplicas": int64(3), "readyReplicas": int64(3), "availableReplicas": int64(3), "currentRevision": "a", "updateRevision": "a"}, map[string]any{"replicas": int64(3)}), ""},
		{"ds updating", obj("apps/v1", "DaemonSet", 1, map[string]any{"observedGeneration": int64(1), "desiredNumberScheduled": int64(2), "updatedNumberScheduled": int64(1)}, nil), "waiting for rollout: 1 of 2 pods updated"},
		{"ds ok", obj("apps/v1", "DaemonSet", 1, map[string]any{"observedGeneration": int64(1), "desiredNumberScheduled": int64(2), "updatedNumberScheduled": int64(2), "numberAvailable": int64(2)}, nil), ""},
		{"deploy old replicas", obj("apps/v1", "Deployment", 1, map[string]any{"observedGeneration": int64(1), "replicas": int64(3), "updatedReplicas": int64(2), "availableReplicas": int64(2)}, map[string]any{"replicas": int64(2)}), "waiting for rollout: 1 old replicas pending termination"},
	}
	for _, c := range cases {
		if got := unhealthy(c.obj); !strings.HasPrefix(got, c.want) || (c.want == "" && got != "") {
			t.Errorf("%s: unhealthy = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestPruneOrderAndDryRun(t *testing.T) {
	f := newFixture(t)
	files := map[string]string{"ns.yaml": namespaceYAML, "cm.yaml": configMapYAML, "crd.yaml": crdYAML}
	opts := Options{Prune: true}
	res, err := f.applier.Apply(f.ctx, f.render(files), nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	inv := res.Inventory
	gone := append(slices.Clone(inv), Object{Version: "v1", Kind: "ConfigMap", Namespace: f.ns, Name: "already-gone"})

	// Dry run: reported, nothing deleted.
	opts.DryRun = true
	res, err = f.applier.Apply(f.ctx, nil, gone, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(names(res.Pruned)); got != fmt.Sprint([]string{"ConfigMap/settings", "CustomResourceDefinition/widgets." + f.group, "Namespace/" + f.ns}) {
		t.Errorf("dry-run Pruned = %s", got)
	}
	if f.get(gvrConfigMap, f.ns, "settings") == nil {
		t.Fatal("dry run deleted the configmap")
	}

	// For real: namespaced objects first, then CRDs, the Namespace last.
	opts.DryRun = false
	res, err = f.applier.Apply(f.ctx, nil, gone, opts)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, o := range res.Pruned {
		order = append(order, o.Kind)
	}
	if got := strings.Join(order, ","); got != "ConfigMap,CustomResourceDefinition,Namespace" {
		t.Errorf("prune order %s", got)
	}
	if len(res.Inventory) != 0 {
		t.Errorf("inventory after pruning everything: %v", res.Inventory)
	}
	if f.get(gvrConfigMap, f.ns, "settings") != nil {
		t.Error("configmap not pruned")
	}
}
