// Package apply turns a checked-out directory of manifests into applied
// cluster state, like Flux's kustomize-controller: Render reads the
// directory (plain YAML/JSON or a kustomization), Applier.Apply validates the
// whole set with a server-side dry run and then server-side applies it,
// prunes what disappeared from the previous inventory, and detects or
// corrects drift; Applier.Health checks that what was applied is rolled out.
//
// The package knows nothing about the GitRepo controller; it works on
// objects and inventories, so it can be tested and reused on its own.
package apply

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

const (
	// DefaultFieldManager is used when Options.FieldManager is empty.
	DefaultFieldManager = "cairn-gitops"

	// PruneAnnotation set to PruneDisabled on an object keeps it in the
	// cluster when it disappears from the source.
	PruneAnnotation = "gitops.cairn.dev/prune"
	// PruneDisabled is the PruneAnnotation value that disables pruning.
	PruneDisabled = "disabled"

	// DriftModeCorrect re-applies objects changed in the cluster.
	DriftModeCorrect = "correct"
	// DriftModeDetect changes nothing and reports drifted objects.
	DriftModeDetect = "detect"
)

var (
	crdGroupKind       = schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}
	namespaceGroupKind = schema.GroupKind{Kind: "Namespace"}
	crdResource        = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// Options control one Apply.
type Options struct {
	// FieldManager owns the applied fields; DefaultFieldManager when empty.
	FieldManager string
	// DefaultNamespace is set on namespaced objects that have none. Without
	// it such objects are an error.
	DefaultNamespace string
	// Prune deletes objects of the previous inventory that are not in the
	// new set (never in detect mode).
	Prune bool
	// DriftMode is DriftModeCorrect (default) or DriftModeDetect; matched
	// case-insensitively, so the GitRepo API's "Correct"/"Detect" work too.
	DriftMode string
	// DryRun validates and reports what would change without persisting.
	DryRun bool
	// Force takes ownership of fields other field managers own.
	Force bool
}

// Result of an Apply.
type Result struct {
	// Applied objects were created or changed (would be, with DryRun).
	Applied []Object
	// Unchanged objects already matched the source.
	Unchanged []Object
	// Pruned objects were deleted (would be, with DryRun).
	Pruned []Object
	// Drifted objects differ from the source in the cluster (detect mode
	// only); missing objects count as drifted.
	Drifted []Object
	// Inventory to pass as previous next time: the applied objects, plus
	// previous objects a failed prune left in place. In detect mode nothing
	// is applied and the previous inventory is returned unchanged.
	Inventory []Object
}

// ObjectError is why one object of the set was refused.
type ObjectError struct {
	// Index of the object in the input, from 1.
	Index  int
	Object Object
	Err    error
}

func (e ObjectError) Error() string {
	return fmt.Sprintf("%s: %v", describe(e.Index, e.Object), e.Err)
}

func (e ObjectError) Unwrap() error { return e.Err }

func describe(index int, o Object) string {
	if o.Name == "" && index == 0 {
		return o.Kind
	}
	if o.Name == "" {
		return fmt.Sprintf("object %d (%s)", index, schema.GroupVersion{Group: o.Group, Version: o.Version}.WithKind(o.Kind))
	}
	return o.String()
}

// ValidationError means the set was refused before anything was applied.
type ValidationError struct {
	Failures []ObjectError
	// RolledBack lists Namespaces and CRDs that had to be created to validate
	// objects that live in them or are of their kinds, and were deleted
	// again when those objects failed validation.
	RolledBack []Object
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of the objects failed validation, nothing was applied:", len(e.Failures))
	for _, f := range e.Failures {
		b.WriteString("\n  ")
		b.WriteString(f.Error())
	}
	if len(e.RolledBack) > 0 {
		b.WriteString("\n  (created for validation and deleted again:")
		for _, o := range e.RolledBack {
			b.WriteString(" ")
			b.WriteString(o.String())
		}
		b.WriteString(")")
	}
	return b.String()
}

func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		errs[i] = f
	}
	return errs
}

// Applier applies object sets to one cluster with one identity. To apply as
// another identity (GitRepo serviceAccountName), build one from a rest.Config
// with Impersonate set.
type Applier struct {
	client dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper

	// EstablishTimeout bounds the wait for CRDs of the set to be established
	// before their custom resources are applied. Default 30s.
	EstablishTimeout time.Duration
}

// New returns an Applier for the cluster of cfg.
func New(cfg *rest.Config) (*Applier, error) {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating dynamic client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating discovery client: %w", err)
	}
	return &Applier{
		client:           client,
		mapper:           restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)),
		EstablishTimeout: 30 * time.Second,
	}, nil
}

// item is one object being applied.
type item struct {
	index   int // from 1
	obj     *unstructured.Unstructured
	id      Object
	mapping *meta.RESTMapping // nil until its CRD (in the set) is established
	rank    int
	live    *unstructured.Unstructured // nil when absent
	// deferred items can only be validated once the Namespaces and CRDs of
	// the set exist.
	deferred bool
	dryRun   *unstructured.Unstructured
	applied  bool
}

// crdInfo is what the set's CRDs define.
type crdInfo struct {
	namespaced bool
	versions   map[string]bool
}

// Apply validates objs as a whole, then applies them (see the package
// documentation). objs are not modified. previous is the inventory of the
// last Apply, used for pruning.
//
// Validation (decoding, mapping every kind, names, duplicates, namespaces,
// and a server-side dry-run apply of every object) happens before anything
// changes; on failure a *ValidationError lists every refused object. The only
// exception is objects in a Namespace, or of a kind defined by a CRD, that
// the same set creates: the API server can only check those once the
// Namespace or CRD exists, so when there are any, the set's Namespaces and
// CRDs are applied first, then those objects are dry-run, and if that fails
// the Namespaces and CRDs this call created are deleted again.
func (a *Applier) Apply(ctx context.Context, objs []*unstructured.Unstructured, previous []Object, opts Options) (Result, error) {
	if opts.FieldManager == "" {
		opts.FieldManager = DefaultFieldManager
	}
	detect := false
	switch strings.ToLower(opts.DriftMode) {
	case "", DriftModeCorrect:
	case DriftModeDetect:
		detect = true
	default:
		return Result{}, fmt.Errorf("invalid drift mode %q: must be %q or %q", opts.DriftMode, DriftModeCorrect, DriftModeDetect)
	}

	// Start from fresh discovery: CRDs may have come and gone since last time.
	a.mapper.ResetWithContext(ctx)

	items, failures := a.prepare(ctx, objs, opts)
	if len(failures) > 0 {
		return Result{}, &ValidationError{Failures: failures}
	}
	slices.SortStableFunc(items, func(x, y *item) int {
		if x.rank != y.rank {
			return x.rank - y.rank
		}
		return compareObjects(x.id, y.id)
	})

	// Read the live state, and find what can only be validated later.
	newNamespaces := map[string]bool{}
	for _, it := range items {
		if it.mapping == nil {
			it.deferred = true
			continue
		}
		live, err := a.get(ctx, it.mapping, it.id)
		if err != nil {
			return Result{}, fmt.Errorf("reading %s: %w", it.id, err)
		}
		it.live = live
		if it.rank == rankNamespace && live == nil {
			newNamespaces[it.id.Name] = true
		}
	}
	for _, it := range items {
		if it.id.Namespace != "" && newNamespaces[it.id.Namespace] {
			it.deferred = true
		}
	}

	// Detect mode compares what the source would make of each object with
	// what is there, whoever owns the fields now: force the dry run.
	dryRunForce := opts.Force || detect
	if failures := a.dryRunAll(ctx, items, opts.FieldManager, dryRunForce, false); len(failures) > 0 {
		return Result{}, &ValidationError{Failures: failures}
	}

	var res Result
	if detect {
		for _, it := range items {
			if it.deferred || it.live == nil || !sameObject(it.dryRun, it.live) {
				res.Drifted = append(res.Drifted, it.id)
			} else {
				res.Unchanged = append(res.Unchanged, it.id)
			}
		}
		res.Inventory = slices.Clone(previous)
		return res, nil
	}

	if opts.DryRun {
		// Deferred objects could not be checked without creating their
		// Namespace or CRD; report them as they would be: created.
		for _, it := range items {
			if it.deferred || it.live == nil || !sameObject(it.dryRun, it.live) {
				res.Applied = append(res.Applied, it.id)
			} else {
				res.Unchanged = append(res.Unchanged, it.id)
			}
			res.Inventory = append(res.Inventory, it.id)
		}
		if opts.Prune {
			pruned, kept, err := a.prune(ctx, items, previous, true)
			res.Pruned = pruned
			res.Inventory = append(res.Inventory, kept...)
			return res, err
		}
		return res, nil
	}

	if slices.ContainsFunc(items, func(it *item) bool { return it.deferred }) {
		if err := a.validateDeferred(ctx, items, opts); err != nil {
			return Result{}, err
		}
	}

	// Apply for real, in order.
	var errs []error
	for i, it := range items {
		if !it.applied {
			if err := a.applyOne(ctx, it, opts); err != nil {
				errs = append(errs, fmt.Errorf("applying %s: %w", it.id, err))
				continue
			}
		}
		// Custom resources need their CRDs established before they are applied.
		if it.rank == rankCRD && (i+1 == len(items) || items[i+1].rank != rankCRD) {
			if err := a.waitEstablished(ctx, items); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, it := range items {
		if !it.applied {
			continue
		}
		res.Inventory = append(res.Inventory, it.id)
		// Unchanged: the server did not write, or wrote only what it
		// maintains itself (an object first created by an apply that sets
		// no fields but the name gets its managedFields on the next apply).
		if it.live != nil && (it.live.GetResourceVersion() == it.dryRun.GetResourceVersion() || sameObject(it.live, it.dryRun)) {
			res.Unchanged = append(res.Unchanged, it.id)
		} else {
			res.Applied = append(res.Applied, it.id)
		}
	}
	if len(errs) > 0 {
		// Keep tracking everything that may exist; no pruning on failure.
		res.Inventory = mergeInventory(res.Inventory, previous)
		return res, errors.Join(errs...)
	}
	if opts.Prune {
		pruned, kept, err := a.prune(ctx, items, previous, false)
		res.Pruned = pruned
		res.Inventory = append(res.Inventory, kept...)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// prepare copies, maps and checks every object.
func (a *Applier) prepare(ctx context.Context, objs []*unstructured.Unstructured, opts Options) ([]*item, []ObjectError) {
	crds := map[schema.GroupKind]crdInfo{}
	for _, o := range objs {
		if o.GroupVersionKind().GroupKind() == crdGroupKind {
			gk, info := crdDefines(o)
			crds[gk] = info
		}
	}

	var items []*item
	var failures []ObjectError
	seen := map[objectKey]int{}
	for i, src := range objs {
		obj := src.DeepCopy()
		// Fields that come along when manifests are exported from a cluster
		// and that server-side apply refuses or treats as preconditions.
		for _, f := range []string{"managedFields", "resourceVersion", "uid", "creationTimestamp", "generation"} {
			unstructured.RemoveNestedField(obj.Object, "metadata", f)
		}
		it := &item{index: i + 1, obj: obj, id: ObjectOf(obj)}
		fail := func(err error) { failures = append(failures, ObjectError{Index: it.index, Object: it.id, Err: err}) }

		gvk := obj.GroupVersionKind()
		if gvk.Kind == "" || gvk.Version == "" {
			fail(errors.New("apiVersion and kind must be set"))
			continue
		}
		if obj.GetName() == "" {
			fail(errors.New("metadata.name is not set"))
			continue
		}
		namespaced := false
		mapping, err := a.mapper.RESTMappingWithContext(ctx, gvk.GroupKind(), gvk.Version)
		switch {
		case err == nil:
			namespaced = mapping.Scope.Name() == meta.RESTScopeNameNamespace
		case meta.IsNoMatchError(err):
			info, ok := crds[gvk.GroupKind()]
			if !ok {
				fail(fmt.Errorf("unknown kind %s in %s: install its CustomResourceDefinition first or add it to the same source", gvk.Kind, gvk.GroupVersion()))
				continue
			}
			if !info.versions[gvk.Version] {
				fail(fmt.Errorf("version %s of %s is not served by its CustomResourceDefinition in the source", gvk.Version, gvk.GroupKind()))
				continue
			}
			namespaced = info.namespaced
		default:
			fail(fmt.Errorf("resolving kind: %w", err))
			continue
		}
		it.mapping = mapping

		switch {
		case !namespaced:
			obj.SetNamespace("")
		case obj.GetNamespace() == "" && opts.DefaultNamespace == "":
			fail(errors.New("namespaced object without metadata.namespace, and no default namespace"))
			continue
		case obj.GetNamespace() == "":
			obj.SetNamespace(opts.DefaultNamespace)
		}
		it.id = ObjectOf(obj)
		switch gk := gvk.GroupKind(); {
		case gk == crdGroupKind:
			it.rank = rankCRD
		case gk == namespaceGroupKind:
			it.rank = rankNamespace
		case !namespaced:
			it.rank = rankClusterScoped
		default:
			it.rank = rankNamespaced
		}
		if first, dup := seen[it.id.key()]; dup {
			fail(fmt.Errorf("duplicate of object %d", first))
			continue
		}
		seen[it.id.key()] = it.index
		items = append(items, it)
	}
	return items, failures
}

// crdDefines reads the kind, scope and served versions a CRD defines.
func crdDefines(crd *unstructured.Unstructured) (schema.GroupKind, crdInfo) {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
	scope, _, _ := unstructured.NestedString(crd.Object, "spec", "scope")
	info := crdInfo{namespaced: scope != "Cluster", versions: map[string]bool{}}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		name, _ := m["name"].(string)
		if served, ok := m["served"].(bool); ok && served {
			info.versions[name] = true
		}
	}
	return schema.GroupKind{Group: group, Kind: kind}, info
}

// dryRunAll dry-runs every item not deferred (or, with deferredOnly, every
// deferred item) and returns every failure.
func (a *Applier) dryRunAll(ctx context.Context, items []*item, fieldManager string, force, deferredOnly bool) []ObjectError {
	var failures []ObjectError
	for _, it := range items {
		if it.deferred != deferredOnly {
			continue
		}
		out, err := a.patch(ctx, it, fieldManager, force, true)
		if err != nil {
			if apierrors.IsConflict(err) && !force {
				err = fmt.Errorf("%w; set Force to take ownership of these fields", err)
			}
			failures = append(failures, ObjectError{Index: it.index, Object: it.id, Err: err})
			continue
		}
		it.dryRun = out
	}
	return failures
}

// validateDeferred applies the set's Namespaces and CRDs, waits for the CRDs,
// and dry-runs the objects that needed them. On failure it deletes the
// Namespaces and CRDs it created.
func (a *Applier) validateDeferred(ctx context.Context, items []*item, opts Options) error {
	var created []*item
	var failures []ObjectError
	for _, it := range items {
		if it.rank != rankCRD && it.rank != rankNamespace {
			continue
		}
		if err := a.applyOne(ctx, it, opts); err != nil {
			failures = append(failures, ObjectError{Index: it.index, Object: it.id, Err: err})
			continue
		}
		if it.live == nil {
			created = append(created, it)
		}
	}
	if len(failures) == 0 {
		if err := a.waitEstablished(ctx, items); err != nil {
			failures = append(failures, ObjectError{Object: Object{Kind: "CustomResourceDefinitions"}, Err: err})
		}
	}
	if len(failures) == 0 {
		a.mapper.ResetWithContext(ctx)
		for _, it := range items {
			if it.mapping != nil {
				continue
			}
			gvk := it.obj.GroupVersionKind()
			mapping, err := a.mapper.RESTMappingWithContext(ctx, gvk.GroupKind(), gvk.Version)
			if err != nil {
				failures = append(failures, ObjectError{Index: it.index, Object: it.id, Err: fmt.Errorf("resolving kind after applying its CustomResourceDefinition: %w", err)})
				continue
			}
			it.mapping = mapping
		}
	}
	if len(failures) == 0 {
		failures = a.dryRunAll(ctx, items, opts.FieldManager, opts.Force, true)
	}
	if len(failures) == 0 {
		return nil
	}
	verr := &ValidationError{Failures: failures}
	// Undo in reverse: Namespaces before CRDs.
	for i := len(created) - 1; i >= 0; i-- {
		it := created[i]
		err := a.resource(it.mapping, it.id.Namespace).Delete(ctx, it.id.Name, metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationBackground)})
		if err == nil || apierrors.IsNotFound(err) {
			verr.RolledBack = append(verr.RolledBack, it.id)
		}
	}
	return verr
}

// applyOne server-side applies it for real.
func (a *Applier) applyOne(ctx context.Context, it *item, opts Options) error {
	out, err := a.patch(ctx, it, opts.FieldManager, opts.Force, false)
	if err != nil {
		if apierrors.IsConflict(err) && !opts.Force {
			err = fmt.Errorf("%w; set Force to take ownership of these fields", err)
		}
		return err
	}
	it.dryRun = out // from now on: the applied object
	it.applied = true
	return nil
}

func (a *Applier) patch(ctx context.Context, it *item, fieldManager string, force, dryRun bool) (*unstructured.Unstructured, error) {
	data, err := it.obj.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	po := metav1.PatchOptions{
		FieldManager: fieldManager,
		Force:        &force,
		// Unknown and duplicate fields are errors, not silently dropped.
		FieldValidation: metav1.FieldValidationStrict,
	}
	if dryRun {
		po.DryRun = []string{metav1.DryRunAll}
	}
	return a.resource(it.mapping, it.id.Namespace).Patch(ctx, it.id.Name, types.ApplyPatchType, data, po)
}

func (a *Applier) resource(mapping *meta.RESTMapping, namespace string) dynamic.ResourceInterface {
	r := a.client.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		return r.Namespace(namespace)
	}
	return r
}

// get returns the live object, or nil when there is none.
func (a *Applier) get(ctx context.Context, mapping *meta.RESTMapping, id Object) (*unstructured.Unstructured, error) {
	live, err := a.resource(mapping, id.Namespace).Get(ctx, id.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return live, err
}

// waitEstablished waits until every CRD of items is established.
func (a *Applier) waitEstablished(ctx context.Context, items []*item) error {
	timeout := a.EstablishTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	for _, it := range items {
		if it.rank != rankCRD {
			continue
		}
		var last string
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
			crd, err := a.client.Resource(crdResource).Get(ctx, it.id.Name, metav1.GetOptions{})
			if err != nil {
				last = err.Error()
				return false, nil
			}
			status, reason, message := condition(crd, "Established")
			last = strings.TrimSpace(reason + " " + message)
			return status == string(metav1.ConditionTrue), nil
		})
		if err != nil {
			return fmt.Errorf("waiting for %s to be established: %w (%s)", it.id, err, last)
		}
	}
	return nil
}

// prune deletes the objects of previous that are not in items, Namespaces
// last. It returns the pruned objects and the ones that must stay in the
// inventory because deleting them failed.
func (a *Applier) prune(ctx context.Context, items []*item, previous []Object, dryRun bool) (pruned, kept []Object, err error) {
	current := map[objectKey]bool{}
	for _, it := range items {
		current[it.id.key()] = true
	}
	var stale []Object
	done := map[objectKey]bool{}
	for _, o := range previous {
		if !current[o.key()] && !done[o.key()] {
			done[o.key()] = true
			stale = append(stale, o)
		}
	}
	pruneRank := func(o Object) int {
		switch o.GroupVersionKind().GroupKind() {
		case namespaceGroupKind:
			return 3
		case crdGroupKind:
			return 2
		}
		if o.Namespace == "" {
			return 1
		}
		return 0
	}
	slices.SortStableFunc(stale, func(x, y Object) int {
		if rx, ry := pruneRank(x), pruneRank(y); rx != ry {
			return rx - ry
		}
		return compareObjects(x, y)
	})

	var errs []error
	for _, o := range stale {
		gk := schema.GroupKind{Group: o.Group, Kind: o.Kind}
		mapping, mErr := a.mapper.RESTMappingWithContext(ctx, gk, o.Version)
		if meta.IsNoMatchError(mErr) {
			mapping, mErr = a.mapper.RESTMappingWithContext(ctx, gk)
		}
		if meta.IsNoMatchError(mErr) {
			continue // the kind is gone, and its objects with it
		}
		if mErr != nil {
			errs = append(errs, fmt.Errorf("pruning %s: %w", o, mErr))
			kept = append(kept, o)
			continue
		}
		live, gErr := a.get(ctx, mapping, o)
		if gErr != nil {
			errs = append(errs, fmt.Errorf("pruning %s: %w", o, gErr))
			kept = append(kept, o)
			continue
		}
		if live == nil || live.GetDeletionTimestamp() != nil {
			continue
		}
		if live.GetAnnotations()[PruneAnnotation] == PruneDisabled {
			continue
		}
		do := metav1.DeleteOptions{
			PropagationPolicy: ptr(metav1.DeletePropagationBackground),
			// Delete exactly the object that was checked for the annotation.
			Preconditions: &metav1.Preconditions{UID: ptr(live.GetUID())},
		}
		if dryRun {
			do.DryRun = []string{metav1.DryRunAll}
		}
		dErr := a.resource(mapping, o.Namespace).Delete(ctx, o.Name, do)
		switch {
		case dErr == nil:
			pruned = append(pruned, o)
		case apierrors.IsNotFound(dErr):
		default:
			errs = append(errs, fmt.Errorf("pruning %s: %w", o, dErr))
			kept = append(kept, o)
		}
	}
	return pruned, kept, errors.Join(errs...)
}

// sameObject reports whether two versions of an object match, ignoring what
// the server maintains itself.
func sameObject(a, b *unstructured.Unstructured) bool {
	return reflect.DeepEqual(comparableView(a), comparableView(b))
}

func comparableView(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy().Object
	delete(c, "status")
	if md, ok := c["metadata"].(map[string]any); ok {
		for _, f := range []string{"managedFields", "resourceVersion", "generation", "creationTimestamp"} {
			delete(md, f)
		}
	}
	return c
}

func mergeInventory(a, b []Object) []Object {
	seen := map[objectKey]bool{}
	var out []Object
	for _, o := range slices.Concat(a, b) {
		if !seen[o.key()] {
			seen[o.key()] = true
			out = append(out, o)
		}
	}
	return out
}

// condition returns the status, reason and message of a status condition.
func condition(u *unstructured.Unstructured, typ string) (status, reason, message string) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != typ {
			continue
		}
		status, _ = m["status"].(string)
		reason, _ = m["reason"].(string)
		message, _ = m["message"].(string)
		return status, reason, message
	}
	return "", "", ""
}

func ptr[T any](v T) *T { return &v }
