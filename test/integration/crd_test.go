package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The six kinds, their plural resource names and short names.
var cairnKinds = []struct {
	group, kind, plural, short string
}{
	{"gateway.cairn.dev", "Route", "routes", "rt"},
	{"gateway.cairn.dev", "AuthPolicy", "authpolicies", "authpol"},
	{"gitops.cairn.dev", "GitRepo", "gitrepos", "gr"},
	{"edge.cairn.dev", "EdgeDevice", "edgedevices", "edev"},
	{"edge.cairn.dev", "Firmware", "firmwares", "fw"},
	{"serverless.cairn.dev", "Function", "functions", "fn"},
}

func TestCRDsInstallAndAreDiscoverable(t *testing.T) {
	e := requireEnv(t)
	ctx := context.Background()
	scheme := e.Client.Scheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range cairnKinds {
		t.Run(k.kind, func(t *testing.T) {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := e.Client.Get(ctx, client.ObjectKey{Name: k.plural + "." + k.group}, &crd); err != nil {
				t.Fatalf("CRD not installed: %v", err)
			}
			established := false
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					established = true
				}
			}
			if !established {
				t.Errorf("CRD %s is not Established: %+v", crd.Name, crd.Status.Conditions)
			}
			if crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
				t.Errorf("scope = %s, want Namespaced", crd.Spec.Scope)
			}
			if !slices.Contains(crd.Spec.Names.ShortNames, k.short) || !slices.Contains(crd.Spec.Names.Categories, "cairn") {
				t.Errorf("names = %+v, want short name %q and category cairn", crd.Spec.Names, k.short)
			}
			v := crd.Spec.Versions[0]
			if v.Subresources == nil || v.Subresources.Status == nil {
				t.Error("status subresource missing")
			}
			if len(v.AdditionalPrinterColumns) < 2 {
				t.Errorf("printer columns = %d, want at least 2", len(v.AdditionalPrinterColumns))
			}
			// Discovery is what kubectl and the cairn CLI resolve kinds with.
			res, err := dc.ServerResourcesForGroupVersion(k.group + "/v1alpha1")
			if err != nil {
				t.Fatalf("discovery: %v", err)
			}
			found := false
			for _, r := range res.APIResources {
				if r.Name == k.plural && slices.Contains(r.Categories, "cairn") {
					found = true
				}
			}
			if !found {
				t.Errorf("discovery has no %s in category cairn", k.plural)
			}
		})
	}
}

func TestSamplesAreAccepted(t *testing.T) {
	e := requireEnv(t)
	ctx := context.Background()
	paths, err := filepath.Glob(filepath.Join(e.Root, "config", "samples", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no samples found: %v", err)
	}
	kindsSeen := map[string]bool{}
	// Namespaces first: the other samples live in them.
	slices.SortStableFunc(paths, func(a, b string) int {
		return boolToInt(filepath.Base(b) == "namespaces.yaml") - boolToInt(filepath.Base(a) == "namespaces.yaml")
	})
	for _, path := range paths {
		if filepath.Base(path) == "kustomization.yaml" {
			continue
		}
		objs, err := decodeFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range objs {
			name := fmt.Sprintf("%s/%s/%s", filepath.Base(path), obj.GetKind(), obj.GetName())
			if err := e.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("cairn-test"), client.ForceOwnership); err != nil {
				t.Errorf("%s rejected: %v", name, err)
				continue
			}
			kindsSeen[obj.GetKind()] = true
			// Read back: the stored object must carry the sample's spec
			// (defaults added, nothing pruned away as unknown).
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(obj.GroupVersionKind())
			if err := e.Client.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil {
				t.Errorf("%s: reading back: %v", name, err)
				continue
			}
			if spec, ok := obj.Object["spec"].(map[string]any); ok {
				assertSubset(t, name+".spec", spec, got.Object["spec"])
			}
		}
	}
	for _, k := range cairnKinds {
		if !kindsSeen[k.kind] {
			t.Errorf("config/samples has no %s", k.kind)
		}
	}
}

// assertSubset fails when want holds a field or value that got lacks: the
// API server pruned or changed what the sample said.
func assertSubset(t *testing.T, path string, want, got any) {
	t.Helper()
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			t.Errorf("%s: stored %T, sample has an object", path, got)
			return
		}
		for k, v := range w {
			assertSubset(t, path+"."+k, v, g[k])
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			t.Errorf("%s: stored %v, sample has %v", path, got, want)
			return
		}
		for i := range w {
			assertSubset(t, fmt.Sprintf("%s[%d]", path, i), w[i], g[i])
		}
	default:
		if fmt.Sprint(want) != fmt.Sprint(got) {
			t.Errorf("%s: stored %v, sample has %v", path, got, want)
		}
	}
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
