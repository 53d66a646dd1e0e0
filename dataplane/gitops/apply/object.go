package apply

import (
	"cmp"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
)

// Object identifies one object in an inventory.
type Object struct {
	Group, Version, Kind, Namespace, Name string
}

// ObjectOf identifies obj as it is (namespace included as set on obj).
func ObjectOf(obj *unstructured.Unstructured) Object {
	gvk := obj.GroupVersionKind()
	return Object{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// String is "<group>/<version>/<kind>/<namespace>/<name>", e.g.
// "apps/v1/Deployment/shop/web". The group is left out for the core group
// ("v1/ConfigMap/shop/settings") and the namespace for cluster-scoped objects
// ("v1/Namespace/shop").
func (o Object) String() string {
	var b strings.Builder
	b.WriteString(schema.GroupVersion{Group: o.Group, Version: o.Version}.String())
	b.WriteString("/")
	b.WriteString(o.Kind)
	if o.Namespace != "" {
		b.WriteString("/")
		b.WriteString(o.Namespace)
	}
	b.WriteString("/")
	b.WriteString(o.Name)
	return b.String()
}

// GroupVersionKind of the object.
func (o Object) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: o.Group, Version: o.Version, Kind: o.Kind}
}

// key identifies the object regardless of API version, as pruning needs:
// the same object read through another version is still the same object.
func (o Object) key() objectKey {
	return objectKey{Group: o.Group, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name}
}

type objectKey struct{ Group, Kind, Namespace, Name string }

// InventoryEntry converts o to the GitRepo status inventory format.
func (o Object) InventoryEntry() gitopsv1alpha1.InventoryEntry {
	return gitopsv1alpha1.InventoryEntry{
		ID:      o.Namespace + "_" + o.Name + "_" + o.Group + "_" + o.Kind,
		Version: o.Version,
	}
}

// ObjectFromInventoryEntry parses a GitRepo status inventory entry
// ("<namespace>_<name>_<group>_<kind>" plus version).
func ObjectFromInventoryEntry(e gitopsv1alpha1.InventoryEntry) (Object, error) {
	parts := strings.Split(e.ID, "_")
	if len(parts) != 4 || parts[1] == "" || parts[3] == "" {
		return Object{}, fmt.Errorf("invalid inventory entry ID %q: want <namespace>_<name>_<group>_<kind>", e.ID)
	}
	return Object{Namespace: parts[0], Name: parts[1], Group: parts[2], Kind: parts[3], Version: e.Version}, nil
}

// ToInventory converts objects to GitRepo status inventory entries.
func ToInventory(objs []Object) []gitopsv1alpha1.InventoryEntry {
	out := make([]gitopsv1alpha1.InventoryEntry, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.InventoryEntry())
	}
	return out
}

// FromInventory parses GitRepo status inventory entries.
func FromInventory(entries []gitopsv1alpha1.InventoryEntry) ([]Object, error) {
	out := make([]Object, 0, len(entries))
	for _, e := range entries {
		o, err := ObjectFromInventoryEntry(e)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

const (
	rankCRD = iota
	rankNamespace
	rankClusterScoped
	rankNamespaced
)

func compareObjects(a, b Object) int {
	return cmp.Or(
		cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.Group, b.Group),
		cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.Name, b.Name),
	)
}
