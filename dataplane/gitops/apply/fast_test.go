package apply

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
)

// requestCounter counts the requests an Applier sends.
type requestCounter struct {
	total atomic.Int64
	// writes are requests that may change the cluster: not GET, not dry run.
	writes atomic.Int64
}

func (c *requestCounter) reset() {
	c.total.Store(0)
	c.writes.Store(0)
}

type countingTransport struct {
	next    http.RoundTripper
	counter *requestCounter
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.counter.total.Add(1)
	if r.Method != http.MethodGet && !r.URL.Query().Has("dryRun") {
		t.counter.writes.Add(1)
	}
	return t.next.RoundTrip(r)
}

// countingConfig returns a copy of cfg whose requests are counted.
func countingConfig(cfg *rest.Config) (*rest.Config, *requestCounter) {
	c := &requestCounter{}
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{next: rt, counter: c} })
	return cfg, c
}

// countingApplier replaces the fixture's Applier with one whose requests
// are counted.
func (f *fixture) countingApplier() *requestCounter {
	f.t.Helper()
	cfg, c := countingConfig(env.Config)
	a, err := New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.applier = a
	return c
}

// manyConfigMaps is a set of a Namespace, a Deployment (read with a GET)
// and n ConfigMaps (read with one LIST when n >= listThreshold).
func manyConfigMaps(n int) map[string]string {
	files := map[string]string{"ns.yaml": namespaceYAML, "deploy.yaml": deploymentYAML}
	for i := range n {
		files[fmt.Sprintf("cm%d.yaml", i)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm%d, namespace: NS}\ndata: {color: blue}\n", i)
	}
	return files
}

func (f *fixture) color(name string) string {
	f.t.Helper()
	got, _, _ := unstructured.NestedString(f.get(gvrConfigMap, f.ns, name).Object, "data", "color")
	return got
}

// A memoized no-op Apply must not hide a later edit in the cluster: the
// edit changes the object's resourceVersion, so the next Apply reads and
// dry-runs it again, and detects or corrects the drift.
func TestMemoDriftStillDetectedAndCorrected(t *testing.T) {
	f := newFixture(t)
	counter := f.countingApplier()
	files := manyConfigMaps(10)
	opts := Options{FieldManager: "test", Force: true}
	res, err := f.applier.Apply(f.ctx, f.render(files), nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	inv := res.Inventory

	// No-op: served from the memo, a handful of requests and no dry runs.
	counter.reset()
	res, err = f.applier.Apply(f.ctx, f.render(files), inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "no-op: Applied", res.Applied)
	if got := len(res.Unchanged); got != 12 {
		t.Errorf("no-op: %d unchanged, want 12", got)
	}
	if n := counter.total.Load(); n > 8 {
		t.Errorf("no-op apply of 12 objects sent %d requests, want a few", n)
	}
	if n := counter.writes.Load(); n != 0 {
		t.Errorf("no-op apply sent %d writes", n)
	}

	// Someone edits one ConfigMap and the Deployment.
	cm := f.get(gvrConfigMap, f.ns, "cm3")
	if err := unstructured.SetNestedField(cm.Object, "red", "data", "color"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dyn.Resource(gvrConfigMap).Namespace(f.ns).Update(f.ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	d := f.get(gvrDeployment, f.ns, "web")
	if err := unstructured.SetNestedField(d.Object, int64(5), "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dyn.Resource(gvrDeployment).Namespace(f.ns).Update(f.ctx, d, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}

	// Detect reports exactly the edited objects.
	detect := opts
	detect.DriftMode = DriftModeDetect
	res, err = f.applier.Apply(f.ctx, f.render(files), inv, detect)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "detect: Drifted", res.Drifted, "ConfigMap/cm3", "Deployment/web")

	// Correct fixes them, and only them.
	res, err = f.applier.Apply(f.ctx, f.render(files), inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "correct: Applied", res.Applied, "ConfigMap/cm3", "Deployment/web")
	if got := f.color("cm3"); got != "blue" {
		t.Errorf("drift not corrected: color=%s", got)
	}
	if got, _, _ := unstructured.NestedInt64(f.get(gvrDeployment, f.ns, "web").Object, "spec", "replicas"); got != 1 {
		t.Errorf("drift not corrected: replicas=%d", got)
	}

	// A deleted object is re-created.
	if err := f.dyn.Resource(gvrConfigMap).Namespace(f.ns).Delete(f.ctx, "cm7", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err = f.applier.Apply(f.ctx, f.render(files), inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "deleted: Applied", res.Applied, "ConfigMap/cm7")
	if f.get(gvrConfigMap, f.ns, "cm7") == nil {
		t.Error("deleted ConfigMap not re-created")
	}
}

// A change in the source is applied although the memo knows the object.
func TestMemoChangedManifestApplied(t *testing.T) {
	f := newFixture(t)
	files := manyConfigMaps(6)
	opts := Options{FieldManager: "test"}
	res, err := f.applier.Apply(f.ctx, f.render(files), nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res, err = f.applier.Apply(f.ctx, f.render(files), res.Inventory, opts); err != nil {
		t.Fatal(err)
	}
	expect(t, "no-op: Applied", res.Applied)

	files["cm2.yaml"] = strings.Replace(files["cm2.yaml"], "blue", "green", 1)
	files["deploy.yaml"] = strings.Replace(deploymentYAML, "nginx:1.27", "nginx:1.28", 1)
	res, err = f.applier.Apply(f.ctx, f.render(files), res.Inventory, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "changed: Applied", res.Applied, "ConfigMap/cm2", "Deployment/web")
	if got := f.color("cm2"); got != "green" {
		t.Errorf("color=%s, want green", got)
	}

	// Removing an object from the set forgets it, and bringing it back
	// applies it again.
	delete(files, "cm4.yaml")
	if res, err = f.applier.Apply(f.ctx, f.render(files), res.Inventory, Options{FieldManager: "test", Prune: true}); err != nil {
		t.Fatal(err)
	}
	expect(t, "removed: Pruned", res.Pruned, "ConfigMap/cm4")
	files["cm4.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm4, namespace: NS}\ndata: {color: blue}\n"
	res, err = f.applier.Apply(f.ctx, f.render(files), res.Inventory, opts)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, "back: Applied", res.Applied, "ConfigMap/cm4")
}

// Re-applying an unchanged set writes nothing, with the memo (same Applier)
// and without it (a new Applier: the dry run equals the live object).
func TestUnchangedObjectNotWritten(t *testing.T) {
	f := newFixture(t)
	files := manyConfigMaps(5)
	files["crd.yaml"] = crdYAML
	files["widget.yaml"] = widgetYAML
	opts := Options{FieldManager: "test", DefaultNamespace: f.ns}
	res, err := f.applier.Apply(f.ctx, f.render(files), nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	inv := res.Inventory
	// An object created by an apply that sets nothing but its name (the
	// Namespace) gets the server's "before-first-apply" managedFields on
	// the next apply that reaches the server: a real, one-time write.
	counter := f.countingApplier()
	if _, err := f.applier.Apply(f.ctx, f.render(files), inv, opts); err != nil {
		t.Fatal(err)
	}
	versions := func() map[string]string {
		out := map[string]string{}
		for _, o := range inv {
			if o.Kind == "CustomResourceDefinition" {
				continue // its controller may still be updating its status
			}
			u := f.get(schema.GroupVersionResource{Group: o.Group, Version: o.Version, Resource: strings.ToLower(o.Kind) + "s"}, o.Namespace, o.Name)
			out[o.String()] = u.GetResourceVersion()
		}
		return out
	}
	before := versions()

	for _, fresh := range []bool{false, true} {
		if fresh {
			counter = f.countingApplier()
		}
		counter.reset()
		res, err := f.applier.Apply(f.ctx, f.render(files), inv, opts)
		if err != nil {
			t.Fatal(err)
		}
		expect(t, fmt.Sprintf("fresh=%v: Applied", fresh), res.Applied)
		if got := len(res.Unchanged); got != len(inv) {
			t.Errorf("fresh=%v: %d unchanged, want %d", fresh, got, len(inv))
		}
		if n := counter.writes.Load(); n != 0 {
			t.Errorf("fresh=%v: %d writes, want none", fresh, n)
		}
		if after := versions(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("fresh=%v: resourceVersions changed:\n%v\n%v", fresh, before, after)
		}
	}
}

// A set with a CRD, its custom resources, a new Namespace and objects in it
// is applied in rank order even with many requests in flight.
func TestParallelApplyKeepsRankOrder(t *testing.T) {
	f := newFixture(t)
	files := manyConfigMaps(20)
	files["crd.yaml"] = crdYAML
	for i := range 20 {
		files[fmt.Sprintf("w%d.yaml", i)] = fmt.Sprintf("apiVersion: GROUP/v1\nkind: Widget\nmetadata: {name: w%d, namespace: NS}\nspec: {size: %d}\n", i, i)
	}
	for _, c := range []int{0, 1, 64} {
		t.Run(fmt.Sprint("concurrency=", c), func(t *testing.T) {
			f.t = t
			opts := Options{FieldManager: "test", Concurrency: c}
			res, err := f.applier.Apply(f.ctx, f.render(files), nil, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Inventory) != 43 {
				t.Fatalf("inventory has %d objects, want 43", len(res.Inventory))
			}
			var kinds []string
			for _, o := range res.Inventory {
				if len(kinds) == 0 || kinds[len(kinds)-1] != o.Kind {
					kinds = append(kinds, o.Kind)
				}
			}
			if got := strings.Join(kinds, ","); got != "CustomResourceDefinition,Namespace,ConfigMap,Deployment,Widget" {
				t.Errorf("inventory order %s", got)
			}
			if !slices.IsSortedFunc(res.Inventory[2:], compareObjects) {
				t.Error("namespaced objects not sorted")
			}
			if f.get(schema.GroupVersionResource{Group: f.group, Version: "v1", Resource: "widgets"}, f.ns, "w19") == nil {
				t.Error("widget not created")
			}
			// The next round creates everything anew.
			f.ns = fmt.Sprintf("apply-%d", nsSeq.Add(1))
			f.group = fmt.Sprintf("t%d.apply.cairn.test", nsSeq.Add(1))
		})
	}
}

// Errors of a parallel dry run are listed in object order.
func TestParallelValidationErrorsSorted(t *testing.T) {
	f := newFixture(t)
	f.createNamespace()
	files := map[string]string{}
	for i := range 30 {
		files[fmt.Sprintf("cm%02d.yaml", i)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm%02d, namespace: NS}\ndata: {n: %d}\n", i, i)
	}
	_, err := f.applier.Apply(f.ctx, f.render(files), nil, Options{Concurrency: 8})
	var verr *ValidationError
	if !errors.As(err, &verr) || len(verr.Failures) != 30 {
		t.Fatalf("want 30 failures, got %v", err)
	}
	if !slices.IsSortedFunc(verr.Failures, func(x, y ObjectError) int { return compareObjects(x.Object, y.Object) }) {
		t.Errorf("failures not in object order: %v", err)
	}
}

func TestMemoForgetsAndEvicts(t *testing.T) {
	var m memo
	key := func(i int) memoKey {
		return memoKey{fieldManager: "fm", object: objectKey{Kind: "ConfigMap", Namespace: "ns", Name: fmt.Sprint(i)}}
	}
	h := [32]byte{1}
	var updates []memoUpdate
	for i := range 10 {
		updates = append(updates, memoUpdate{key: key(i), hash: h, resourceVersion: "1"})
	}
	m.update(updates, nil, nil, 100)
	if !m.hit(key(3), h, "1") || m.hit(key(3), h, "2") || m.hit(key(3), [32]byte{2}, "1") || m.hit(key(30), h, "1") {
		t.Error("hit is wrong")
	}
	// Another field manager's objects are other entries.
	if m.hit(memoKey{fieldManager: "other", object: key(3).object}, h, "1") {
		t.Error("hit across field managers")
	}
	m.update(nil, nil, []memoKey{key(3)}, 100)
	if m.hit(key(3), h, "1") || m.len() != 9 {
		t.Errorf("forget: %d entries", m.len())
	}
	// Over the limit, the least recently used go first.
	m.update(nil, []memoKey{key(9)}, nil, 100)
	m.update([]memoUpdate{{key: key(20), hash: h, resourceVersion: "1"}}, nil, nil, 5)
	if m.len() > 5 || !m.hit(key(20), h, "1") || !m.hit(key(9), h, "1") {
		t.Errorf("evict: %d entries, key 9 kept %v", m.len(), m.hit(key(9), h, "1"))
	}
	m.update(nil, nil, nil, -1)
	if m.len() != 0 {
		t.Error("negative limit keeps entries")
	}
}

func TestForEach(t *testing.T) {
	for _, limit := range []int{0, 1, 3, 100} {
		var running, peak atomic.Int64
		out := make([]int, 50)
		forEach(len(out), limit, func(i int) {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			out[i] = i * i
			running.Add(-1)
		})
		for i, v := range out {
			if v != i*i {
				t.Fatalf("limit %d: out[%d] = %d", limit, i, v)
			}
		}
		if p := peak.Load(); p > int64(max(limit, 1)) {
			t.Errorf("limit %d: %d calls at once", limit, p)
		}
	}
}

// Health of many objects of one resource is read with one LIST, and still
// reports missing and terminating objects, in inventory order.
func TestHealthManyObjects(t *testing.T) {
	f := newFixture(t)
	counter := f.countingApplier()
	files := manyConfigMaps(10)
	files["cm3.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm3, namespace: NS, finalizers: [cairn.test/hold]}\n"
	res, err := f.applier.Apply(f.ctx, f.render(files), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.dyn.Resource(gvrConfigMap).Namespace(f.ns).Delete(f.ctx, "cm3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := f.dyn.Resource(gvrConfigMap).Namespace(f.ns).Delete(f.ctx, "cm7", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	counter.reset()
	problems, err := f.applier.Health(f.ctx, res.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"v1/ConfigMap/" + f.ns + "/cm3: being deleted",
		"v1/ConfigMap/" + f.ns + "/cm7: not found",
		"apps/v1/Deployment/" + f.ns + "/web: waiting for the controller to observe generation 1 (observed 0)",
	}
	if got := problemStrings(problems); !slices.Equal(got, want) {
		t.Errorf("problems = %q, want %q", got, want)
	}
	// One LIST for the ConfigMaps, a GET each for the Namespace and the
	// Deployment, and discovery (reset by the Apply).
	if n := counter.total.Load(); n > 5 {
		t.Errorf("health of %d objects took %d requests", len(res.Inventory), n)
	}
}
