package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// stdinSource is how -f - is named in messages.
const stdinSource = "STDIN"

// manifestExtensions are the files picked up when -f names a directory;
// files named explicitly are read whatever their extension.
var manifestExtensions = map[string]bool{".yaml": true, ".yml": true, ".json": true}

// manifest is one object read from input, or the reason it could not be read.
// Keeping failures alongside objects lets apply report every bad document
// while still applying the good ones.
type manifest struct {
	// origin locates the object for messages, e.g. "app.yaml: document 2".
	origin string
	obj    *unstructured.Unstructured
	err    error
}

// readManifests reads every object from paths, where "-" is stdin and a
// directory contributes its manifest files (recursively if recursive is set).
// Problems with the paths themselves fail the whole read, since nothing the
// user meant can be applied reliably; problems inside documents are recorded
// per manifest.
func readManifests(paths []string, recursive bool, stdin io.Reader) ([]manifest, error) {
	files, err := expandPaths(paths, recursive)
	if err != nil {
		return nil, err
	}
	var manifests []manifest
	for _, file := range files {
		if file == "-" {
			manifests = append(manifests, decodeManifests(stdinSource, stdin)...)
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading manifests: %w", err)
		}
		manifests = append(manifests, decodeManifests(file, bytes.NewReader(data))...)
	}
	return manifests, nil
}

// buildKustomization builds the kustomization in dir as "kubectl kustomize"
// does and returns the resulting objects in kustomize's output order, numbered
// from 1 in messages, e.g. "kustomize config/samples: item 3". A build failure
// fails the whole read, since kustomize produces all objects or none.
func buildKustomization(dir string) ([]manifest, error) {
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("building kustomization %s: %w", dir, err)
	}
	var manifests []manifest
	for i, res := range resources.Resources() {
		origin := fmt.Sprintf("kustomize %s: item %d", dir, i+1)
		data, err := res.MarshalJSON()
		if err != nil {
			manifests = append(manifests, manifest{origin: origin, err: fmt.Errorf("encoding kustomize output: %w", err)})
			continue
		}
		// Decode like a -f document, so the objects get the same checks
		// and the same representation (int64 numbers) as -f objects.
		manifests = append(manifests, decodeDocument(origin, data)...)
	}
	return manifests, nil
}

// expandPaths replaces directories in paths with the manifest files they
// contain, in lexical order.
func expandPaths(paths []string, recursive bool) ([]string, error) {
	var files []string
	seenStdin := false
	for _, path := range paths {
		if path == "-" {
			if seenStdin {
				return nil, errors.New("-f - (stdin) may be given only once")
			}
			seenStdin = true
			files = append(files, path)
			continue
		}
		info, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("reading manifests: %w", err)
		}
		if !info.IsDir() {
			files = append(files, path)
			continue
		}
		err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir() && p != path && !recursive:
				return fs.SkipDir
			case !d.IsDir() && manifestExtensions[filepath.Ext(p)]:
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading manifests: %w", err)
		}
	}
	return files, nil
}

// decodeManifests splits a YAML or JSON stream into "---"-separated documents
// and decodes each into objects; a List document yields its items. Documents
// are numbered from 1 in messages, counting empty ones, so the number matches
// what a reader counts in the file.
func decodeManifests(source string, r io.Reader) []manifest {
	var manifests []manifest
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for doc := 1; ; doc++ {
		data, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return manifests
		}
		origin := fmt.Sprintf("%s: document %d", source, doc)
		if err != nil {
			// The stream itself is broken; later documents cannot be located.
			return append(manifests, manifest{origin: origin, err: fmt.Errorf("reading input: %w", err)})
		}
		manifests = append(manifests, decodeDocument(origin, data)...)
	}
}

// decodeDocument decodes one YAML or JSON document. Empty documents (only
// comments or whitespace) yield nothing.
func decodeDocument(origin string, data []byte) []manifest {
	// Strict conversion rejects duplicate keys, which would otherwise
	// silently keep only the last value.
	jsonData, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return []manifest{{origin: origin, err: err}}
	}
	if bytes.Equal(bytes.TrimSpace(jsonData), []byte("null")) {
		return nil
	}
	var content map[string]any
	// utiljson keeps integers as int64, as unstructured objects require.
	if err := utiljson.Unmarshal(jsonData, &content); err != nil {
		return []manifest{{origin: origin, err: fmt.Errorf("not a Kubernetes object: %w", err)}}
	}
	obj := &unstructured.Unstructured{Object: content}
	if err := validateTypeMeta(obj); err != nil {
		return []manifest{{origin: origin, err: err}}
	}
	if !obj.IsList() {
		return []manifest{{origin: origin, obj: obj}}
	}

	var items []manifest
	index := 0
	err = obj.EachListItem(func(item runtime.Object) error {
		index++
		u := item.(*unstructured.Unstructured) // EachListItem yields *Unstructured for unstructured lists.
		itemOrigin := fmt.Sprintf("%s: item %d", origin, index)
		if err := validateTypeMeta(u); err != nil {
			items = append(items, manifest{origin: itemOrigin, err: err})
		} else {
			items = append(items, manifest{origin: itemOrigin, obj: u})
		}
		return nil
	})
	if err != nil {
		return []manifest{{origin: origin, err: fmt.Errorf("invalid list: %w", err)}}
	}
	return items
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
