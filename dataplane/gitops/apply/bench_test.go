package apply

import (
	"context"
	"errors"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/cairn-platform/cairn/internal/testenv"
)

// benchSet is 1,000 ConfigMaps, 5 Deployments and 5 Services in ns.
func benchSet(ns string) []*unstructured.Unstructured {
	var objs []*unstructured.Unstructured
	for i := range 1000 {
		objs = append(objs, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": fmt.Sprintf("cm-%04d", i), "namespace": ns, "labels": map[string]any{"app": "bench"}},
			"data":     map[string]any{"index": fmt.Sprint(i), "settings.yaml": "color: blue\nsize: 3\nenabled: true\n"},
		}})
	}
	for i := range 5 {
		name := fmt.Sprintf("web-%d", i)
		labels := map[string]any{"app": name}
		objs = append(objs, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": name, "namespace": ns},
			"spec": map[string]any{
				"replicas": int64(2),
				"selector": map[string]any{"matchLabels": labels},
				"template": map[string]any{
					"metadata": map[string]any{"labels": labels},
					"spec": map[string]any{"containers": []any{map[string]any{
						"name": "web", "image": "nginx:1.27",
						"ports": []any{map[string]any{"containerPort": int64(80)}},
					}}},
				},
			},
		}}, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Service",
			"metadata": map[string]any{"name": name, "namespace": ns},
			"spec": map[string]any{
				"selector": labels,
				"ports":    []any{map[string]any{"port": int64(80), "targetPort": int64(80)}},
			},
		}})
	}
	return objs
}

// BenchmarkApply1000 applies benchSet: "first" into an empty namespace,
// "noop" again and again with the same Applier (the resync of an unchanged
// revision), "noop-restart" with a new Applier each time (the first resync
// after the manager restarted: no memo). The rest.Config allows 500 QPS
// (burst 1000), or 100 QPS (burst 200) like the manager's client.
// requests/op counts the HTTP requests of one Apply.
func BenchmarkApply1000(b *testing.B) {
	if errors.Is(startErr, testenv.ErrNoAssets) {
		b.Skip(startErr.Error())
	}
	if startErr != nil {
		b.Fatalf("control plane did not start: %v", startErr)
	}
	for _, limit := range []struct {
		name  string
		qps   float32
		burst int
	}{{"qps500", 500, 1000}, {"qps100", 100, 200}} {
		cfg := rest.CopyConfig(env.Config)
		cfg.QPS, cfg.Burst = limit.qps, limit.burst
		b.Run("first/"+limit.name, func(b *testing.B) { benchFirst(b, cfg) })
		b.Run("noop/"+limit.name, func(b *testing.B) { benchNoop(b, cfg, false) })
		b.Run("noop-restart/"+limit.name, func(b *testing.B) { benchNoop(b, cfg, true) })
	}
}

type bench struct {
	b       *testing.B
	ctx     context.Context
	cfg     *rest.Config
	counter *requestCounter
	applier *Applier
	dyn     dynamic.Interface // not counted, for setup
	objs    []*unstructured.Unstructured
}

func newBench(b *testing.B, cfg *rest.Config) *bench {
	bn := &bench{b: b, ctx: b.Context()}
	bn.cfg, bn.counter = countingConfig(cfg)
	bn.newApplier()
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		b.Fatal(err)
	}
	bn.dyn = dyn
	return bn
}

func (bn *bench) newApplier() {
	a, err := New(bn.cfg)
	if err != nil {
		bn.b.Fatal(err)
	}
	bn.applier = a
}

// newNamespace creates an empty namespace and the set in it.
func (bn *bench) newNamespace() string {
	ns := fmt.Sprintf("bench-%d", nsSeq.Add(1))
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
	if _, err := bn.dyn.Resource(gvrNamespace).Create(bn.ctx, obj, metav1.CreateOptions{}); err != nil {
		bn.b.Fatal(err)
	}
	bn.objs = benchSet(ns)
	return ns
}

// deleteAll removes what the set created in ns: envtest runs no namespace
// controller, and etcd should not grow from run to run.
func (bn *bench) deleteAll(ns string) {
	for _, gvr := range []struct{ group, version, resource string }{{"", "v1", "configmaps"}, {"apps", "v1", "deployments"}} {
		r := bn.dyn.Resource(gvrOf(gvr.group, gvr.version, gvr.resource)).Namespace(ns)
		if err := r.DeleteCollection(bn.ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			bn.b.Fatal(err)
		}
	}
	for i := range 5 {
		_ = bn.dyn.Resource(gvrOf("", "v1", "services")).Namespace(ns).Delete(bn.ctx, fmt.Sprintf("web-%d", i), metav1.DeleteOptions{})
	}
}

// apply applies the set, timed and counted, and checks the outcome.
func (bn *bench) apply(wantApplied int) {
	bn.counter.reset()
	bn.b.StartTimer()
	res, err := bn.applier.Apply(bn.ctx, bn.objs, nil, Options{FieldManager: "bench", Force: true})
	bn.b.StopTimer()
	if err != nil {
		bn.b.Fatal(err)
	}
	if len(res.Applied) != wantApplied || len(res.Applied)+len(res.Unchanged) != len(bn.objs) {
		bn.b.Fatalf("applied %d, unchanged %d; want %d applied of %d", len(res.Applied), len(res.Unchanged), wantApplied, len(bn.objs))
	}
}

func benchFirst(b *testing.B, cfg *rest.Config) {
	bn := newBench(b, cfg)
	b.StopTimer()
	var requests int64
	for range b.N {
		ns := bn.newNamespace()
		bn.apply(len(bn.objs))
		requests += bn.counter.total.Load()
		bn.deleteAll(ns)
	}
	b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
}

func benchNoop(b *testing.B, cfg *rest.Config, restart bool) {
	bn := newBench(b, cfg)
	b.StopTimer()
	ns := bn.newNamespace()
	defer bn.deleteAll(ns)
	bn.apply(len(bn.objs))
	b.ResetTimer() // the setup is not part of a no-op
	var requests int64
	for range b.N {
		if restart {
			bn.newApplier()
		}
		bn.apply(0)
		requests += bn.counter.total.Load()
	}
	b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
}

func gvrOf(group, version, resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
}
