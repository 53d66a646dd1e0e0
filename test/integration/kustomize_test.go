package integration

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// renderKustomization builds a kustomization directory the way
// `kubectl kustomize` does.
func renderKustomization(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := resMap.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeYAML(out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestDefaultKustomizationAppliesServerSideDryRun(t *testing.T) {
	e := requireEnv(t)
	ctx := context.Background()
	objs := renderKustomization(t, filepath.Join(e.Root, "config", "default"))

	// A dry-run create of a namespaced object needs its namespace to exist,
	// so the Namespace itself is applied for real first.
	for _, obj := range objs {
		if obj.GetKind() == "Namespace" {
			if err := e.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj.DeepCopy()), client.FieldOwner("cairn-test")); err != nil {
				t.Fatalf("creating namespace %s: %v", obj.GetName(), err)
			}
		}
	}
	kinds := map[string]int{}
	for _, obj := range objs {
		kinds[obj.GetKind()]++
		err := e.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.DryRunAll, client.FieldOwner("cairn-test"), client.ForceOwnership)
		if err != nil {
			t.Errorf("%s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
	want := map[string]int{"CustomResourceDefinition": 6, "Deployment": 3, "ServiceAccount": 3, "Namespace": 1, "Service": 7}
	for kind, n := range want {
		if kinds[kind] != n {
			t.Errorf("config/default renders %d %s, want %d (all: %v)", kinds[kind], kind, n, kinds)
		}
	}

	t.Run("manager runs hardened", func(t *testing.T) {
		var dep appsv1.Deployment
		fromRendered(t, objs, "Deployment", "cairn-manager", &dep)
		pod := dep.Spec.Template.Spec
		if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
			t.Error("pod must run as non-root")
		}
		c := pod.Containers[0]
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, corev1.Capability("ALL")) {
			t.Errorf("container security context is not hardened: %+v", sc)
		}
		if c.LivenessProbe == nil || c.ReadinessProbe == nil {
			t.Error("liveness and readiness probes are required")
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Error("memory request and limit are required")
		}
		if !slices.Contains(c.Args, "--leader-elect") {
			t.Error("replicated manager must elect a leader")
		}
	})

	t.Run("manager role is least privilege", func(t *testing.T) {
		var role rbacv1.ClusterRole
		fromRendered(t, objs, "ClusterRole", "cairn-manager", &role)
		for _, rule := range role.Rules {
			for _, field := range [][]string{rule.Verbs, rule.Resources, rule.APIGroups} {
				if slices.Contains(field, "*") {
					t.Errorf("wildcard in rule %+v", rule)
				}
			}
			// The edge hub updates the credential hash in the Secrets it owns
			// when a device joins again; nothing deletes or patches Secrets.
			if slices.Contains(rule.Resources, "secrets") && (slices.Contains(rule.Verbs, "delete") || slices.Contains(rule.Verbs, "patch") || slices.Contains(rule.Verbs, "deletecollection")) {
				t.Errorf("manager must not delete or patch Secrets: %+v", rule)
			}
		}
	})
}

func fromRendered(t *testing.T, objs []*unstructured.Unstructured, kind, name string, into any) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("config/default renders no %s %s", kind, name)
}
