package apply

import (
	"context"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
)

const (
	// listThreshold is how many objects of one resource in one namespace
	// the set must have for their live state to be read with one
	// metadata-only LIST rather than a GET each. A LIST also covers the
	// namespace's other objects of that resource, so it only pays off for
	// several of the set's.
	listThreshold = 4
	// listPageSize bounds the objects in one LIST response.
	listPageSize = 500
)

// liveGroup is the items of one resource in one namespace.
type liveGroup struct {
	resource   schema.GroupVersionResource
	namespaced bool
	namespace  string
	items      []*item
}

// observe reads the live state of every item with a mapping: it sets live
// (nil when absent) or, when the memo vouches for the object, memoHit. Large
// groups are read with one metadata-only LIST: absent objects and memo hits
// need nothing more, the others a GET each, or one full LIST when they are
// many. The error is the first read failure in item order.
func (a *Applier) observe(ctx context.Context, items []*item, opts Options) error {
	groups := groupByResource(items)
	limit := concurrency(opts)
	listed := make([]map[string]*metav1.PartialObjectMetadata, len(groups))
	forEach(len(groups), limit, func(g int) {
		if len(groups[g].items) < listThreshold {
			return
		}
		// On failure fall back to GETs: a service account may be allowed
		// to get but not to list, or the resource may not support LIST.
		listed[g], _ = a.listMetadata(ctx, groups[g])
	})

	var toGet []*item
	misses := make([][]*item, len(groups))
	for g, group := range groups {
		for _, it := range group.items {
			if listed[g] == nil {
				toGet = append(toGet, it)
				continue
			}
			m, ok := listed[g][it.id.Name]
			switch {
			case !ok:
				it.live = nil
			case a.memo.hit(it.memoKey, it.hash, m.ResourceVersion):
				it.memoHit = true
			default:
				misses[g] = append(misses[g], it)
			}
		}
	}
	// Many objects to read in a group (after a restart, the memo is empty):
	// one full LIST instead of a GET each, when they are at least half of
	// what it returns.
	forEach(len(groups), limit, func(g int) {
		if n := len(misses[g]); n < listThreshold || 2*n < len(listed[g]) {
			return
		}
		if err := a.listLive(ctx, groups[g], misses[g]); err == nil {
			misses[g] = nil
		}
	})
	for _, m := range misses {
		toGet = append(toGet, m...)
	}
	a.getAll(ctx, toGet, limit, true)
	a.distrustChangedCRDs(ctx, items, limit)
	for _, it := range items {
		if it.readErr != nil {
			return fmt.Errorf("reading %s: %w", it.id, it.readErr)
		}
	}
	return nil
}

// getAll reads the items' live objects in parallel; with useMemo, the
// memo may vouch for what it reads.
func (a *Applier) getAll(ctx context.Context, items []*item, limit int, useMemo bool) {
	forEach(len(items), limit, func(i int) {
		it := items[i]
		it.live, it.readErr = a.get(ctx, it.mapping, it.id)
		if useMemo && it.live != nil && a.memo.hit(it.memoKey, it.hash, it.live.GetResourceVersion()) {
			it.memoHit = true
		}
	})
}

// distrustChangedCRDs takes back the memo hits of custom resources whose
// CRD is in the set and is not a memo hit itself: the CRD (its schema) may
// have changed, and the custom resources must then be validated against it
// again, as they would be without the memo.
func (a *Applier) distrustChangedCRDs(ctx context.Context, items []*item, limit int) {
	changed := map[schema.GroupKind]bool{}
	for _, it := range items {
		if it.rank == rankCRD && !it.memoHit {
			gk, _ := crdDefines(it.obj)
			changed[gk] = true
		}
	}
	if len(changed) == 0 {
		return
	}
	var toGet []*item
	for _, it := range items {
		if it.memoHit && changed[it.obj.GroupVersionKind().GroupKind()] {
			it.memoHit = false
			if it.live == nil {
				toGet = append(toGet, it)
			}
		}
	}
	a.getAll(ctx, toGet, limit, false)
}

// groupByResource groups the items with a mapping by resource and
// namespace, in item order.
func groupByResource(items []*item) []*liveGroup {
	type key struct {
		resource  schema.GroupVersionResource
		namespace string
	}
	index := map[key]*liveGroup{}
	var groups []*liveGroup
	for _, it := range items {
		if it.mapping == nil {
			continue
		}
		k := key{it.mapping.Resource, it.id.Namespace}
		g, ok := index[k]
		if !ok {
			g = &liveGroup{resource: k.resource, namespace: k.namespace, namespaced: it.mapping.Scope.Name() == meta.RESTScopeNameNamespace}
			index[k] = g
			groups = append(groups, g)
		}
		g.items = append(g.items, it)
	}
	return groups
}

// listMetadata lists the metadata of the group's resource in its
// namespace, page by page, by name. The LIST is a consistent read (no
// resourceVersion), so it cannot show an older resourceVersion than the
// memo knows about.
func (a *Applier) listMetadata(ctx context.Context, g *liveGroup) (map[string]*metav1.PartialObjectMetadata, error) {
	var r metadata.ResourceInterface = a.meta.Resource(g.resource)
	if g.namespaced {
		r = a.meta.Resource(g.resource).Namespace(g.namespace)
	}
	byName := map[string]*metav1.PartialObjectMetadata{}
	opts := metav1.ListOptions{Limit: listPageSize}
	for {
		list, err := r.List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing %s in %q: %w", g.resource, g.namespace, err)
		}
		for i := range list.Items {
			byName[list.Items[i].Name] = &list.Items[i]
		}
		if list.Continue == "" {
			return byName, nil
		}
		opts.Continue = list.Continue
	}
}

// listLive sets the live object of items, all of group g, from one full
// LIST, page by page. An item not in the list is absent.
func (a *Applier) listLive(ctx context.Context, g *liveGroup, items []*item) error {
	var r dynamic.ResourceInterface = a.client.Resource(g.resource)
	if g.namespaced {
		r = a.client.Resource(g.resource).Namespace(g.namespace)
	}
	byName := make(map[string]*item, len(items))
	for _, it := range items {
		byName[it.id.Name] = it
	}
	var found []*unstructured.Unstructured
	opts := metav1.ListOptions{Limit: listPageSize}
	for {
		list, err := r.List(ctx, opts)
		if err != nil {
			return fmt.Errorf("listing %s in %q: %w", g.resource, g.namespace, err)
		}
		for i := range list.Items {
			if byName[list.Items[i].GetName()] != nil {
				found = append(found, &list.Items[i])
			}
		}
		if list.GetContinue() == "" {
			break
		}
		opts.Continue = list.GetContinue()
	}
	for _, it := range items {
		it.live = nil
	}
	for _, u := range found {
		// A list's items carry no apiVersion and kind; a GET's do.
		u.SetGroupVersionKind(byName[u.GetName()].obj.GroupVersionKind())
		byName[u.GetName()].live = u
	}
	return nil
}

// unchangedByApply reports whether applying would leave live as it is:
// the dry run of the apply, made on the same resourceVersion, equals it,
// including who manages which field. The server stamps a new time on a
// manager's managedFields entry even when its apply changes nothing, and
// does not write in that case, so those times are ignored.
func unchangedByApply(live, dryRun *unstructured.Unstructured) bool {
	if live.GetResourceVersion() == "" || live.GetResourceVersion() != dryRun.GetResourceVersion() {
		return false
	}
	return reflect.DeepEqual(withoutManagedFieldsTimes(live.Object), withoutManagedFieldsTimes(dryRun.Object))
}

// withoutManagedFieldsTimes returns obj with the time of every managedFields
// entry removed, copying only what it changes.
func withoutManagedFieldsTimes(obj map[string]any) map[string]any {
	md, ok := obj["metadata"].(map[string]any)
	if !ok {
		return obj
	}
	entries, ok := md["managedFields"].([]any)
	if !ok {
		return obj
	}
	stripped := make([]any, len(entries))
	for i, e := range entries {
		m, ok := e.(map[string]any)
		if !ok {
			stripped[i] = e
			continue
		}
		c := make(map[string]any, len(m))
		for k, v := range m {
			if k != "time" {
				c[k] = v
			}
		}
		stripped[i] = c
	}
	mdCopy := make(map[string]any, len(md))
	for k, v := range md {
		mdCopy[k] = v
	}
	mdCopy["managedFields"] = stripped
	objCopy := make(map[string]any, len(obj))
	for k, v := range obj {
		objCopy[k] = v
	}
	objCopy["metadata"] = mdCopy
	return objCopy
}

// remember records in the memo what this Apply learned: objects found or
// made equal to their source, at their resourceVersion. Objects of previous
// that left the set are forgotten, so the memo follows the sources.
func (a *Applier) remember(items []*item, previous []Object, fieldManager string) {
	var updates []memoUpdate
	for _, it := range items {
		var rv string
		switch {
		case it.memoHit:
			continue // refreshed below, from the existing entry
		case it.applied && it.dryRun != nil:
			rv = it.dryRun.GetResourceVersion()
		case it.unchanged && it.live != nil:
			rv = it.live.GetResourceVersion()
		default:
			continue
		}
		updates = append(updates, memoUpdate{key: it.memoKey, hash: it.hash, resourceVersion: rv})
	}
	var touched []memoKey
	for _, it := range items {
		if it.memoHit {
			touched = append(touched, it.memoKey)
		}
	}
	current := map[objectKey]bool{}
	for _, it := range items {
		current[it.id.key()] = true
	}
	var forget []memoKey
	for _, o := range previous {
		if !current[o.key()] {
			forget = append(forget, memoKey{fieldManager: fieldManager, object: o.key()})
		}
	}
	a.memo.update(updates, touched, forget, a.MemoLimit)
}
