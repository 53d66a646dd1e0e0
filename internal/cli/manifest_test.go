package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDecodeManifestsMultiDocument(t *testing.T) {
	input := `# leading comment
apiVersion: test.cairn.dev/v1
kind: Widget
metadata:
  name: first
spec:
  size: 3
---
# a document with only comments is skipped but still counted
---
{"apiVersion": "test.cairn.dev/v1", "kind": "Gadget", "metadata": {"name": "second"}}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: third
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: fourth
`
	manifests := decodeManifests("in.yaml", strings.NewReader(input))

	want := []struct{ origin, kind, name string }{
		{"in.yaml: document 1", "Widget", "first"},
		{"in.yaml: document 3", "Gadget", "second"},
		{"in.yaml: document 4: item 1", "ConfigMap", "third"},
		{"in.yaml: document 4: item 2", "ConfigMap", "fourth"},
	}
	if len(manifests) != len(want) {
		t.Fatalf("got %d manifests, want %d: %+v", len(manifests), len(want), manifests)
	}
	for i, w := range want {
		m := manifests[i]
		if m.err != nil {
			t.Fatalf("manifest %d (%s): unexpected error: %v", i, m.origin, m.err)
		}
		if m.origin != w.origin || m.obj.GetKind() != w.kind || m.obj.GetName() != w.name {
			t.Errorf("manifest %d = (%q, %s/%s), want (%q, %s/%s)", i, m.origin, m.obj.GetKind(), m.obj.GetName(), w.origin, w.kind, w.name)
		}
	}
	// Unstructured objects need int64, not float64, or encoding them fails later.
	if size, ok := manifests[0].obj.Object["spec"].(map[string]any)["size"].(int64); !ok || size != 3 {
		t.Errorf("spec.size = %#v, want int64(3)", manifests[0].obj.Object["spec"].(map[string]any)["size"])
	}
}

func TestDecodeManifestsReportsBadDocuments(t *testing.T) {
	input := `apiVersion: v1
kind: ConfigMap
metadata:
  name: good-1
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: [unclosed
---
kind: ConfigMap
metadata:
  name: no-api-version
---
apiVersion: v1
metadata:
  name: no-kind
---
just a string
---
apiVersion: v1
kind: ConfigMap
kind: ConfigMap
---
apiVersion: v1
kind: List
items:
- kind: ConfigMap
---
apiVersion: a/b/c
kind: ConfigMap
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: good-2
`
	manifests := decodeManifests("bad.yaml", strings.NewReader(input))

	want := []struct{ origin, errContains, name string }{
		{"bad.yaml: document 1", "", "good-1"},
		{"bad.yaml: document 2", "yaml: line 4", ""},
		{"bad.yaml: document 3", "apiVersion is not set", ""},
		{"bad.yaml: document 4", "kind is not set", ""},
		{"bad.yaml: document 5", "not a Kubernetes object", ""},
		{"bad.yaml: document 6", `key "kind" already set`, ""},
		{"bad.yaml: document 7: item 1", "apiVersion is not set", ""},
		{"bad.yaml: document 8", "invalid apiVersion", ""},
		{"bad.yaml: document 9", "", "good-2"},
	}
	if len(manifests) != len(want) {
		t.Fatalf("got %d manifests, want %d: %+v", len(manifests), len(want), manifests)
	}
	for i, w := range want {
		m := manifests[i]
		if m.origin != w.origin {
			t.Errorf("manifest %d: origin = %q, want %q", i, m.origin, w.origin)
		}
		if w.errContains == "" {
			if m.err != nil || m.obj.GetName() != w.name {
				t.Errorf("%s: got (%v, err %v), want object %q", m.origin, m.obj, m.err, w.name)
			}
			continue
		}
		if m.err == nil || !strings.Contains(m.err.Error(), w.errContains) {
			t.Errorf("%s: error = %v, want it to contain %q", m.origin, m.err, w.errContains)
		}
	}
}

func TestReadManifestsExpandsPaths(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "b.yaml"), configMap("b"))
	writeFile(t, filepath.Join(dir, "a.json"), `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}`)
	writeFile(t, filepath.Join(dir, "README.md"), "not a manifest")
	writeFile(t, filepath.Join(dir, "nested", "c.yml"), configMap("c"))
	explicit := filepath.Join(t.TempDir(), "manifest.txt")
	writeFile(t, explicit, configMap("explicit"))
	stdin := strings.NewReader(configMap("from-stdin"))

	tests := []struct {
		name      string
		paths     []string
		recursive bool
		want      []string
	}{
		{"directory", []string{dir}, false, []string{"a", "b"}},
		{"recursive directory", []string{dir}, true, []string{"a", "b", "c"}},
		{"explicit file of any extension, then stdin", []string{explicit, "-"}, false, []string{"explicit", "from-stdin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			manifests, err := readManifests(tt.paths, tt.recursive, stdin)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range manifests {
				if m.err != nil {
					t.Fatalf("%s: %v", m.origin, m.err)
				}
				got = append(got, m.obj.GetName())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("names = %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("stdin is named in messages", func(t *testing.T) {
		manifests, err := readManifests([]string{"-"}, false, strings.NewReader("kind: ConfigMap"))
		if err != nil {
			t.Fatal(err)
		}
		if len(manifests) != 1 || manifests[0].origin != "STDIN: document 1" {
			t.Errorf("manifests = %+v, want one from %q", manifests, "STDIN: document 1")
		}
	})
}

func TestReadManifestsRejectsBadPaths(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	if _, err := readManifests([]string{missing}, false, nil); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: error = %v, want one naming %s", err, missing)
	}
	if _, err := readManifests([]string{"-", "-"}, false, strings.NewReader("")); err == nil || !strings.Contains(err.Error(), "only once") {
		t.Errorf("stdin twice: error = %v, want it rejected", err)
	}
}

func TestBuildKustomization(t *testing.T) {
	dir := filepath.Join("testdata", "kustomize")
	manifests, err := buildKustomization(dir)
	if err != nil {
		t.Fatal(err)
	}
	// kustomize keeps the kustomization's resource order; apply sorts later.
	want := []struct{ origin, kind, name string }{
		{"kustomize " + dir + ": item 1", "Widget", "kz-sprocket"},
		{"kustomize " + dir + ": item 2", "ConfigMap", "kz-settings"},
		{"kustomize " + dir + ": item 3", "Namespace", "cairn-kustomize-test"},
	}
	if len(manifests) != len(want) {
		t.Fatalf("got %d manifests, want %d: %+v", len(manifests), len(want), manifests)
	}
	for i, w := range want {
		m := manifests[i]
		if m.err != nil {
			t.Fatalf("%s: unexpected error: %v", m.origin, m.err)
		}
		if m.origin != w.origin || m.obj.GetKind() != w.kind || m.obj.GetName() != w.name {
			t.Errorf("manifest %d = (%q, %s/%s), want (%q, %s/%s)", i, m.origin, m.obj.GetKind(), m.obj.GetName(), w.origin, w.kind, w.name)
		}
		if part := m.obj.GetLabels()["app.kubernetes.io/part-of"]; part != "cairn-kustomize-test" {
			t.Errorf("%s: part-of label = %q, want the kustomization's label", m.origin, part)
		}
	}
	// Numbers must be int64, as for -f, or encoding the objects fails later.
	if size, ok := manifests[0].obj.Object["spec"].(map[string]any)["size"].(int64); !ok || size != 7 {
		t.Errorf("spec.size = %#v, want int64(7)", manifests[0].obj.Object["spec"].(map[string]any)["size"])
	}

	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := buildKustomization(missing); err == nil || !strings.Contains(err.Error(), "building kustomization "+missing) {
		t.Errorf("missing directory: error = %v, want one naming %s", err, missing)
	}
}

func configMap(name string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n"
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
