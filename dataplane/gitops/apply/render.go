package apply

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kustomizationFiles are the names kustomize recognises, in its order.
var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// manifestExtensions are the files read from a plain (non-kustomize) directory.
var manifestExtensions = map[string]bool{".yaml": true, ".yml": true, ".json": true}

// Render turns dir into the objects to apply.
//
// When dir holds a kustomization file it is built with kustomize (krusty), with
// plugins disabled, load restrictions on (nothing outside dir) and remote
// bases refused. Otherwise every *.yaml, *.yml and *.json file under dir is
// read (recursively, in lexical order; directories whose name starts with "."
// such as .git are skipped), each a multi-document YAML or JSON stream; List
// documents yield their items and empty documents are ignored.
//
// Every document that is not a Kubernetes object fails the render; the error
// names each such file and document (numbered from 1).
func Render(dir string) ([]*unstructured.Unstructured, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("rendering manifests: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("rendering manifests: %s is not a directory", dir)
	}
	if kustomizationFile(dir) != "" {
		return renderKustomization(dir)
	}
	return renderPlain(dir)
}

// kustomizationFile returns the kustomization file in dir, or "".
func kustomizationFile(dir string) string {
	for _, name := range kustomizationFiles {
		p := filepath.Join(dir, name)
		if info, err := os.Stat(p); err == nil && !info.IsDir() {
			return p
		}
	}
	return ""
}

func renderPlain(dir string) ([]*unstructured.Unstructured, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && p != dir && strings.HasPrefix(d.Name(), "."):
			return fs.SkipDir
		case d.IsDir():
			if p != dir && kustomizationFile(p) != "" {
				rel, _ := filepath.Rel(dir, p)
				return fmt.Errorf("%s holds a kustomization but %s does not: add a kustomization.yaml to the root listing it as a resource", rel, dir)
			}
		case manifestExtensions[filepath.Ext(p)]:
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rendering %s: %w", dir, err)
	}
	var objs []*unstructured.Unstructured
	var errs []error
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("rendering %s: %w", dir, err)
		}
		rel, err := filepath.Rel(dir, file)
		if err != nil {
			rel = file
		}
		o, e := decodeStream(rel, data)
		objs = append(objs, o...)
		errs = append(errs, e...)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("rendering %s: %w", dir, errors.Join(errs...))
	}
	return objs, nil
}

func renderKustomization(dir string) ([]*unstructured.Unstructured, error) {
	if err := checkLocalKustomization(dir, dir, map[string]bool{}); err != nil {
		return nil, fmt.Errorf("building kustomization %s: %w", dir, err)
	}
	opts := krusty.MakeDefaultOptions() // plugins disabled, root-only loading
	resources, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("building kustomization %s: %w", dir, err)
	}
	var objs []*unstructured.Unstructured
	var errs []error
	for i, res := range resources.Resources() {
		origin := fmt.Sprintf("kustomize output item %d", i+1)
		data, err := res.MarshalJSON()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: encoding: %w", origin, err))
			continue
		}
		o, e := decodeDocument(origin, data)
		objs = append(objs, o...)
		errs = append(errs, e...)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("building kustomization %s: %w", dir, errors.Join(errs...))
	}
	return objs, nil
}

// checkLocalKustomization refuses kustomizations (dir and the local bases and
// components it references, recursively) that reference anything remote or
// need Helm. Kustomize would clone git URLs or fetch http(s) files itself;
// here everything must come from the checked-out tree.
func checkLocalKustomization(root, dir string, seen map[string]bool) error {
	if seen[dir] {
		return nil
	}
	seen[dir] = true
	file := kustomizationFile(dir)
	if file == "" {
		return nil // a plain directory of resources; kustomize reports problems
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var k kusttypes.Kustomization
	if err := yaml.Unmarshal(data, &k); err != nil {
		return fmt.Errorf("%s: %w", relTo(root, file), err)
	}
	if len(k.HelmCharts) > 0 || len(k.HelmChartInflationGenerator) > 0 {
		return fmt.Errorf("%s: helmCharts are not supported", relTo(root, file))
	}
	var refs []string
	refs = append(refs, k.Resources...)
	refs = append(refs, k.Components...)
	refs = append(refs, k.Bases...) //nolint:staticcheck // deprecated, but kustomize still loads bases, so they are checked too
	refs = append(refs, k.Crds...)
	for _, list := range [][]string{k.Generators, k.Transformers, k.Validators} {
		for _, r := range list {
			if !strings.Contains(r, "\n") { // inline plugin configs are not references
				refs = append(refs, r)
			}
		}
	}
	for _, r := range refs {
		if isRemote(r) {
			return fmt.Errorf("%s: remote resource %q is not supported: only files in the repository can be used", relTo(root, file), r)
		}
		p := filepath.Join(dir, r)
		info, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("%s: resource %q: %w (remote resources are not supported)", relTo(root, file), r, err)
		}
		if info.IsDir() {
			if err := checkLocalKustomization(root, p, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

func isRemote(ref string) bool {
	return strings.Contains(ref, "://") ||
		strings.HasPrefix(ref, "git@") ||
		strings.HasPrefix(ref, "github.com/") ||
		strings.HasPrefix(ref, "gitlab.com/") ||
		strings.HasPrefix(ref, "bitbucket.org/") ||
		strings.Contains(ref, "?ref=") ||
		strings.Contains(ref, "?version=")
}

func relTo(root, p string) string {
	if rel, err := filepath.Rel(root, p); err == nil {
		return rel
	}
	return p
}

// decodeStream splits a YAML or JSON stream into "---"-separated documents.
// Documents are numbered from 1, counting empty ones.
func decodeStream(source string, data []byte) ([]*unstructured.Unstructured, []error) {
	var objs []*unstructured.Unstructured
	var errs []error
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 1; ; doc++ {
		chunk, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, errs
		}
		origin := fmt.Sprintf("%s: document %d", source, doc)
		if err != nil {
			return objs, append(errs, fmt.Errorf("%s: %w", origin, err))
		}
		o, e := decodeDocument(origin, chunk)
		objs = append(objs, o...)
		errs = append(errs, e...)
	}
}

// decodeDocument decodes one YAML or JSON document; empty ones yield nothing.
func decodeDocument(origin string, data []byte) ([]*unstructured.Unstructured, []error) {
	// Strict: duplicate keys are an error rather than last-one-wins.
	jsonData, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, []error{fmt.Errorf("%s: %w", origin, err)}
	}
	if trimmed := bytes.TrimSpace(jsonData); len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, nil
	}
	var content map[string]any
	// utiljson keeps integers as int64, as unstructured objects require.
	if err := utiljson.Unmarshal(jsonData, &content); err != nil {
		return nil, []error{fmt.Errorf("%s: not a Kubernetes object: %w", origin, err)}
	}
	obj := &unstructured.Unstructured{Object: content}
	if err := validateTypeMeta(obj); err != nil {
		return nil, []error{fmt.Errorf("%s: not a Kubernetes object: %w", origin, err)}
	}
	if !obj.IsList() {
		return []*unstructured.Unstructured{obj}, nil
	}
	var objs []*unstructured.Unstructured
	var errs []error
	index := 0
	err = obj.EachListItem(func(item runtime.Object) error {
		index++
		u, ok := item.(*unstructured.Unstructured)
		if !ok {
			return fmt.Errorf("item %d is %T", index, item)
		}
		if err := validateTypeMeta(u); err != nil {
			errs = append(errs, fmt.Errorf("%s: item %d: not a Kubernetes object: %w", origin, index, err))
		} else {
			objs = append(objs, u)
		}
		return nil
	})
	if err != nil {
		return nil, []error{fmt.Errorf("%s: invalid list: %w", origin, err)}
	}
	return objs, errs
}

func validateTypeMeta(obj *unstructured.Unstructured) error {
	switch {
	case obj.GetAPIVersion() == "":
		return errors.New("apiVersion is not set")
	case obj.GetKind() == "":
		return errors.New("kind is not set")
	}
	if _, err := schema.ParseGroupVersion(obj.GetAPIVersion()); err != nil {
		return fmt.Errorf("invalid apiVersion: %w", err)
	}
	return nil
}
