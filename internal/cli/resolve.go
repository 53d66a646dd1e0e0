package cli

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/restmapper"
)

// resolveTypes maps a type argument of get to the resources it names: all
// resources in a category (e.g. "cairn"), or the one resource matching a
// plural, singular or short name or a Kind, optionally qualified as
// resource.version.group. Categories win, as in kubectl.
func (f *factory) resolveTypes(arg string) ([]*meta.RESTMapping, error) {
	mapper, err := f.ToRESTMapper()
	if err != nil {
		return nil, err
	}
	disc, err := f.ToDiscoveryClient()
	if err != nil {
		return nil, err
	}
	categories := restmapper.NewDiscoveryCategoryExpander(disc)

	if mappings, ok, err := categoryMappings(mapper, categories, arg); ok {
		return mappings, err
	}
	mapping, err := mappingFor(mapper, arg)
	if err == nil {
		return []*meta.RESTMapping{mapping}, nil
	}
	// A miss makes the RESTMapper refresh a stale discovery cache, so look
	// for a category again: one added since the cache was written (say, by
	// installing the Cairn CRDs) only shows up now.
	if mappings, ok, cerr := categoryMappings(mapper, categories, arg); ok {
		return mappings, cerr
	}
	return nil, err
}

// categoryMappings reports whether category is known and, if so, the
// mappings of its resources.
func categoryMappings(mapper meta.RESTMapper, categories restmapper.CategoryExpander, category string) ([]*meta.RESTMapping, bool, error) {
	resources, ok := categories.Expand(category)
	if !ok {
		return nil, false, nil
	}
	var mappings []*meta.RESTMapping
	// Discovery lists a resource once per served version; keep the first,
	// which discovery orders as preferred.
	var seen []schema.GroupResource
	for _, gr := range resources {
		if slices.Contains(seen, gr) {
			continue
		}
		seen = append(seen, gr)
		gvk, err := mapper.KindFor(gr.WithVersion(""))
		if err != nil {
			return nil, true, fmt.Errorf("resolving %s in category %q: %w", gr, category, err)
		}
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return nil, true, fmt.Errorf("resolving %s in category %q: %w", gr, category, err)
		}
		mappings = append(mappings, mapping)
	}
	return mappings, true, nil
}

// mappingFor resolves a single resource or kind argument the way kubectl
// does: as a resource name first ("widgets", "widget", "wg",
// "widgets.v1.example.com"), then as a Kind ("Widget", "Widget.v1.example.com").
func mappingFor(mapper meta.RESTMapper, arg string) (*meta.RESTMapping, error) {
	fullySpecifiedGVR, gr := schema.ParseResourceArg(arg)
	var gvk schema.GroupVersionKind
	// Lookup errors are deliberately dropped here: the Kind lookup below
	// reports discovery failures, and a plain miss is reported uniformly.
	if fullySpecifiedGVR != nil {
		gvk, _ = mapper.KindFor(*fullySpecifiedGVR)
	}
	if gvk.Empty() {
		gvk, _ = mapper.KindFor(gr.WithVersion(""))
	}
	if !gvk.Empty() {
		return mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}

	fullySpecifiedGVK, gk := schema.ParseKindArg(arg)
	if fullySpecifiedGVK != nil {
		if mapping, err := mapper.RESTMapping(fullySpecifiedGVK.GroupKind(), fullySpecifiedGVK.Version); err == nil {
			return mapping, nil
		}
	}
	mapping, err := mapper.RESTMapping(gk)
	if meta.IsNoMatchError(err) {
		return nil, fmt.Errorf("the server doesn't have a resource type %q", arg)
	}
	if err != nil {
		return nil, fmt.Errorf("resolving resource type %q: %w", arg, err)
	}
	return mapping, nil
}
