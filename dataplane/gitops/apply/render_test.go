package apply

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
)

// writeFiles writes name → content under dir, creating directories.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func ids(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, ObjectOf(o).String())
	}
	return out
}

func TestRenderPlain(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"b.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: b1, namespace: ns}
---
# only a comment
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b2, namespace: ns}
`,
		"a/deploy.yml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ns}
`,
		"c.json":          `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}`,
		"d.yaml":          "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s1}}\n- {apiVersion: v1, kind: Secret, metadata: {name: s2}}\n",
		"README.md":       "# not a manifest",
		".git/config.yml": "not: a manifest",
		".github/ci.yaml": "on: push",
	})
	objs, err := Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(ids(objs), " ")
	want := "apps/v1/Deployment/ns/web v1/ConfigMap/ns/b1 v1/ConfigMap/ns/b2 v1/Namespace/ns v1/Secret/s1 v1/Secret/s2"
	if got != want {
		t.Errorf("rendered\n %s\nwant\n %s", got, want)
	}
}

func TestRenderPlainRejectsNonObjects(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"ok.yaml":       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n",
		"bad.yaml":      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\nfoo: bar\n",
		"sub/list.yaml": "- a\n- b\n",
	})
	_, err := Render(dir)
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"bad.yaml: document 2: not a Kubernetes object: apiVersion is not set", "list.yaml: document 1: not a Kubernetes object"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestRenderKustomize(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: shop
namePrefix: prod-
resources:
- base
configMapGenerator:
- name: settings
  literals: [color=blue]
  options: {disableNameSuffixHash: true}
`,
		"base/kustomization.yaml": "resources: [cm.yaml]\n",
		"base/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: base}\ndata: {a: b}\n",
		"ignored.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: not-listed}\n",
	})
	objs, err := Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(ids(objs), " ")
	want := "v1/ConfigMap/shop/prod-base v1/ConfigMap/shop/prod-settings"
	if got != want {
		t.Errorf("rendered %s, want %s", got, want)
	}
}

func TestRenderKustomizeRefusesRemote(t *testing.T) {
	for name, ref := range map[string]string{
		"git":   "github.com/example/repo//deploy?ref=v1",
		"https": "https://example.com/deploy.yaml",
		"ssh":   "ssh://git@example.com/repo.git",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{
				"kustomization.yaml":       "resources:\n- local\n",
				"local/kustomization.yaml": "resources:\n- " + ref + "\n",
			})
			_, err := Render(dir)
			if err == nil || !strings.Contains(err.Error(), "remote resource") || !strings.Contains(err.Error(), ref) {
				t.Fatalf("want remote resource error naming %q, got %v", ref, err)
			}
		})
	}
}

func TestRenderKustomizeRefusesMissingAndOutside(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "app")
	writeFiles(t, root, map[string]string{
		"app/kustomization.yaml": "resources:\n- ../other\n",
		"other/cm.yaml":          "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
	})
	if _, err := Render(dir); err == nil {
		t.Fatal("want error for a resource outside the directory")
	}
	writeFiles(t, root, map[string]string{"app/kustomization.yaml": "resources:\n- missing.yaml\n"})
	if _, err := Render(dir); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("want error naming missing.yaml, got %v", err)
	}
}

func TestObjectStringAndInventory(t *testing.T) {
	objs := []Object{
		{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "ns", Name: "web"},
		{Version: "v1", Kind: "Namespace", Name: "ns"},
	}
	if got := objs[0].String(); got != "apps/v1/Deployment/ns/web" {
		t.Errorf("String() = %q", got)
	}
	if got := objs[1].String(); got != "v1/Namespace/ns" {
		t.Errorf("String() = %q", got)
	}
	inv := ToInventory(objs)
	if inv[0] != (gitopsv1alpha1.InventoryEntry{ID: "ns_web_apps_Deployment", Version: "v1"}) || inv[1].ID != "_ns__Namespace" {
		t.Errorf("inventory %+v", inv)
	}
	back, err := FromInventory(inv)
	if err != nil {
		t.Fatal(err)
	}
	if back[0] != objs[0] || back[1] != objs[1] {
		t.Errorf("round trip %+v", back)
	}
	if _, err := ObjectFromInventoryEntry(gitopsv1alpha1.InventoryEntry{ID: "bad"}); err == nil {
		t.Error("want error for a malformed ID")
	}
}
