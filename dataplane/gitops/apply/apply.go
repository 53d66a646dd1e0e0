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
	"crypto/sha256"
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
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/util/flowcontrol"
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
	// Concurrency bounds the requests one Apply has in flight at a time;
	// DefaultConcurrency when zero or negative. Objects are still applied
	// rank by rank (CRDs, Namespaces, cluster-scoped, namespaced), in
	// parallel within a rank.
	Concurrency int
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
//
// An Applier is safe for concurrent use. It remembers what it applied (see
// memo) so that re-applying an unchanged set costs a few requests, not
// several per object; share one Applier between the sources applied with
// one identity.
type Applier struct {
	client dynamic.Interface
	meta   metadata.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
	memo   memo

	// EstablishTimeout bounds the wait for CRDs of the set to be established
	// before their custom resources are applied. Default 30s.
	EstablishTimeout time.Duration
	// MemoLimit bounds how many applied objects the Applier remembers to
	// skip unchanged ones on the next Apply; DefaultMemoLimit when zero,
	// nothing remembered when negative.
	MemoLimit int
}

// New returns an Applier for the cluster of cfg.
//
// Its clients share one HTTP client and one rate limiter (from cfg.QPS and
// cfg.Burst unless cfg.RateLimiter is set), so the Applier as a whole keeps
// to cfg's request rate however its requests are spread over clients.
func New(cfg *rest.Config) (*Applier, error) {
	cfg = withSharedRateLimiter(cfg)
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating HTTP client: %w", err)
	}
	client, err := dynamic.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("creating dynamic client: %w", err)
	}
	mc, err := metadata.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("creating metadata client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("creating discovery client: %w", err)
	}
	return &Applier{
		client:           client,
		meta:             mc,
		mapper:           restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)),
		EstablishTimeout: 30 * time.Second,
	}, nil
}

// withSharedRateLimiter returns a copy of cfg with a rate limiter built
// from its QPS and Burst (client-go's defaults when zero), so that clients
// built from the copy share it instead of getting one each. A negative QPS
// means no client-side limit.
func withSharedRateLimiter(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	if cfg.RateLimiter != nil {
		return cfg
	}
	qps, burst := cfg.QPS, cfg.Burst
	if qps == 0 {
		qps = rest.DefaultQPS
	}
	if burst == 0 {
		burst = rest.DefaultBurst
	}
	if qps > 0 {
		cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(qps, burst)
	}
	return cfg
}

// item is one object being applied.
type item struct {
	index   int // from 1
	obj     *unstructured.Unstructured
	id      Object
	data    []byte // obj as sent to the server
	hash    [sha256.Size]byte
	memoKey memoKey
	mapping *meta.RESTMapping // nil until its CRD (in the set) is established
	rank    int
	// live is the object in the cluster: nil when absent, and when memoHit.
	live *unstructured.Unstructured
	// memoHit: the live object is what this Applier last applied from the
	// same content (see memo), so it is neither read nor dry-run.
	memoHit bool
	// deferred items can only be validated once the Namespaces and CRDs of
	// the set exist.
	deferred bool
	dryRun   *unstructured.Unstructured
	// unchanged: applying would not change the object (memoHit, or the dry
	// run equals the live object), so it is not applied.
	unchanged bool
	applied   bool
	readErr   error
}

// exists reports whether the object is in the cluster.
func (it *item) exists() bool { return it.live != nil || it.memoHit }

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
//
// Large sets are cheap: live state is read with one metadata-only LIST per
// resource and namespace where the set has several objects; reads, dry runs
// and applies run Options.Concurrency at a time (applies rank by rank); an
// object whose dry run equals the live object is not written; and objects
// this Applier applied before that changed neither in the source nor in the
// cluster are not even read or dry-run (see memo), so re-applying an
// unchanged set costs a few requests whatever its size.
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
	// Whatever happens, keep what was learned about the server.
	defer a.remember(items, previous, opts.FieldManager)

	// Read the live state, and find what can only be validated later.
	if err := a.observe(ctx, items, opts); err != nil {
		return Result{}, err
	}
	markDeferred(items)

	// Detect mode compares what the source would make of each object with
	// what is there, whoever owns the fields now: force the dry run.
	dryRunForce := opts.Force || detect
	if failures := a.dryRunAll(ctx, items, opts, dryRunForce, false); len(failures) > 0 {
		return Result{}, &ValidationError{Failures: failures}
	}
	for _, it := range items {
		it.unchanged = it.memoHit || (it.live != nil && it.dryRun != nil && unchangedByApply(it.live, it.dryRun))
	}

	if detect {
		var res Result
		res.Unchanged, res.Drifted = splitUnchanged(items)
		res.Inventory = slices.Clone(previous)
		return res, nil
	}
	if opts.DryRun {
		return a.dryRunResult(ctx, items, previous, opts)
	}

	if slices.ContainsFunc(items, func(it *item) bool { return it.deferred }) {
		if err := a.validateDeferred(ctx, items, opts); err != nil {
			return Result{}, err
		}
	}

	errs := a.applyInOrder(ctx, items, opts)
	var res Result
	for _, it := range items {
		if !it.applied && !it.unchanged {
			continue
		}
		res.Inventory = append(res.Inventory, it.id)
		// Unchanged: not applied because nothing would change, or the server
		// did not write, or wrote only what it maintains itself (an object
		// first created by an apply that sets no fields but the name gets
		// its managedFields on the next apply).
		if it.unchanged || (it.live != nil && (it.live.GetResourceVersion() == it.dryRun.GetResourceVersion() || sameObject(it.live, it.dryRun))) {
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
		pruned, kept, err := a.pruneWith(ctx, items, previous, false, opts)
		res.Pruned = pruned
		res.Inventory = append(res.Inventory, kept...)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// markDeferred marks the items that can only be dry-run once the set's
// Namespaces and CRDs exist: those whose kind is not known yet, and those in
// a Namespace the set creates.
func markDeferred(items []*item) {
	newNamespaces := map[string]bool{}
	for _, it := range items {
		if it.mapping == nil {
			it.deferred = true
			continue
		}
		if it.rank == rankNamespace && !it.exists() {
			newNamespaces[it.id.Name] = true
		}
	}
	for _, it := range items {
		if it.id.Namespace != "" && newNamespaces[it.id.Namespace] {
			it.deferred = true
			it.memoHit = false // cannot be: its Namespace is not there
		}
	}
}

// splitUnchanged sorts items into those that already match the source and
// those that would change. Deferred objects could not be checked without
// creating their Namespace or CRD, and missing ones would be created: both
// would change. The dry run ignores who owns a field (sameObject), as
// ownership alone is no drift.
func splitUnchanged(items []*item) (unchanged, changed []Object) {
	for _, it := range items {
		if it.unchanged || (!it.deferred && it.live != nil && sameObject(it.dryRun, it.live)) {
			unchanged = append(unchanged, it.id)
		} else {
			changed = append(changed, it.id)
		}
	}
	return unchanged, changed
}

// dryRunResult reports what a real Apply would do, changing nothing.
func (a *Applier) dryRunResult(ctx context.Context, items []*item, previous []Object, opts Options) (Result, error) {
	var res Result
	res.Unchanged, res.Applied = splitUnchanged(items)
	for _, it := range items {
		res.Inventory = append(res.Inventory, it.id)
	}
	if !opts.Prune {
		return res, nil
	}
	pruned, kept, err := a.pruneWith(ctx, items, previous, true, opts)
	res.Pruned = pruned
	res.Inventory = append(res.Inventory, kept...)
	return res, err
}

// applyInOrder applies the items that are not applied yet and would change,
// rank by rank and in parallel within a rank, and waits for the CRDs to be
// established before anything that may be a custom resource. It returns the
// failures in item order; a failure does not stop the other objects.
func (a *Applier) applyInOrder(ctx context.Context, items []*item, opts Options) []error {
	var errs []error
	for _, rank := range rankRuns(items) {
		failures := a.applyAll(ctx, rank, opts)
		for _, f := range failures {
			errs = append(errs, fmt.Errorf("applying %s: %w", f.Object, f.Err))
		}
		if rank[0].rank == rankCRD {
			if err := a.waitEstablished(ctx, items, concurrency(opts)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// applyAll applies, in parallel, the items that are not applied yet and
// would change, and returns the failures in item order.
func (a *Applier) applyAll(ctx context.Context, items []*item, opts Options) []ObjectError {
	errs := make([]error, len(items))
	forEach(len(items), concurrency(opts), func(i int) {
		if it := items[i]; !it.applied && !it.unchanged {
			errs[i] = a.applyOne(ctx, it, opts)
		}
	})
	return objectErrors(items, errs)
}

// rankRuns splits items, sorted by rank, into runs of one rank each.
func rankRuns(items []*item) [][]*item {
	var runs [][]*item
	for start := 0; start < len(items); {
		end := start + 1
		for end < len(items) && items[end].rank == items[start].rank {
			end++
		}
		runs = append(runs, items[start:end])
		start = end
	}
	return runs
}

// objectErrors pairs the non-nil errs with their items, in item order.
func objectErrors(items []*item, errs []error) []ObjectError {
	var failures []ObjectError
	for i, err := range errs {
		if err != nil {
			failures = append(failures, ObjectError{Index: items[i].index, Object: items[i].id, Err: err})
		}
	}
	return failures
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
		data, err := obj.MarshalJSON()
		if err != nil {
			fail(fmt.Errorf("encoding: %w", err))
			continue
		}
		it.data, it.hash = data, sha256.Sum256(data)
		it.memoKey = memoKey{fieldManager: opts.FieldManager, object: it.id.key()}
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

// dryRunAll dry-runs, in parallel, every item not deferred (or, with
// deferredOnly, every deferred item) that the memo does not already vouch
// for, and returns every failure in item order.
func (a *Applier) dryRunAll(ctx context.Context, items []*item, opts Options, force, deferredOnly bool) []ObjectError {
	errs := make([]error, len(items))
	forEach(len(items), concurrency(opts), func(i int) {
		it := items[i]
		if it.deferred != deferredOnly || it.memoHit {
			return
		}
		out, err := a.patch(ctx, it, opts.FieldManager, force, true)
		if err != nil {
			if apierrors.IsConflict(err) && !force {
				err = fmt.Errorf("%w; set Force to take ownership of these fields", err)
			}
			errs[i] = err
			return
		}
		it.dryRun = out
	})
	return objectErrors(items, errs)
}

// validateDeferred applies the set's Namespaces and CRDs, waits for the CRDs,
// and dry-runs the objects that needed them. On failure it deletes the
// Namespaces and CRDs it created.
func (a *Applier) validateDeferred(ctx context.Context, items []*item, opts Options) error {
	var created []*item
	var failures []ObjectError
	for _, rank := range rankRuns(items) {
		if r := rank[0].rank; r != rankCRD && r != rankNamespace {
			continue
		}
		failures = append(failures, a.applyAll(ctx, rank, opts)...)
		for _, it := range rank {
			if it.applied && !it.exists() {
				created = append(created, it)
			}
		}
	}
	if len(failures) == 0 {
		if err := a.waitEstablished(ctx, items, concurrency(opts)); err != nil {
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
		failures = a.dryRunAll(ctx, items, opts, opts.Force, true)
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
	po := metav1.PatchOptions{
		FieldManager: fieldManager,
		Force:        &force,
		// Unknown and duplicate fields are errors, not silently dropped.
		FieldValidation: metav1.FieldValidationStrict,
	}
	if dryRun {
		po.DryRun = []string{metav1.DryRunAll}
	}
	return a.resource(it.mapping, it.id.Namespace).Patch(ctx, it.id.Name, types.ApplyPatchType, it.data, po)
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

// waitEstablished waits until every CRD of items is established, polling
// them in parallel. It returns the failure of the first CRD in item order.
func (a *Applier) waitEstablished(ctx context.Context, items []*item, limit int) error {
	timeout := a.EstablishTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	var crds []*item
	for _, it := range items {
		if it.rank == rankCRD {
			crds = append(crds, it)
		}
	}
	errs := make([]error, len(crds))
	forEach(len(crds), limit, func(i int) {
		errs[i] = a.waitOneEstablished(ctx, crds[i].id, timeout)
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *Applier) waitOneEstablished(ctx context.Context, id Object, timeout time.Duration) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		crd, err := a.client.Resource(crdResource).Get(ctx, id.Name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		status, reason, message := condition(crd, "Established")
		last = strings.TrimSpace(reason + " " + message)
		return status == string(metav1.ConditionTrue), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s to be established: %w (%s)", id, err, last)
	}
	return nil
}

// prune deletes the objects of previous that are not in items: namespaced
// objects, then cluster-scoped ones, then CRDs, Namespaces last; in parallel
// within each of these steps, DefaultConcurrency at a time. It returns the
// pruned objects and the ones that must stay in the inventory because
// deleting them failed, both in that order.
func (a *Applier) prune(ctx context.Context, items []*item, previous []Object, dryRun bool) (pruned, kept []Object, err error) {
	return a.pruneWith(ctx, items, previous, dryRun, Options{})
}

// pruneWith is prune with the concurrency of opts.
func (a *Applier) pruneWith(ctx context.Context, items []*item, previous []Object, dryRun bool, opts Options) (pruned, kept []Object, err error) {
	stale := staleObjects(items, previous)
	outcomes := make([]pruneOutcome, len(stale))
	for start := 0; start < len(stale); {
		end := start + 1
		for end < len(stale) && pruneRank(stale[end]) == pruneRank(stale[start]) {
			end++
		}
		forEach(end-start, concurrency(opts), func(i int) {
			outcomes[start+i] = a.pruneOne(ctx, stale[start+i], dryRun)
		})
		start = end
	}
	var errs []error
	for i, o := range outcomes {
		switch {
		case o.err != nil:
			errs = append(errs, fmt.Errorf("pruning %s: %w", stale[i], o.err))
			kept = append(kept, stale[i])
		case o.deleted:
			pruned = append(pruned, stale[i])
		}
	}
	return pruned, kept, errors.Join(errs...)
}

// staleObjects returns the objects of previous not in items, once each, in
// pruning order.
func staleObjects(items []*item, previous []Object) []Object {
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
	slices.SortStableFunc(stale, func(x, y Object) int {
		if rx, ry := pruneRank(x), pruneRank(y); rx != ry {
			return rx - ry
		}
		return compareObjects(x, y)
	})
	return stale
}

// pruneRank orders deletions: what lives in Namespaces or is defined by CRDs
// goes before them.
func pruneRank(o Object) int {
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

type pruneOutcome struct {
	deleted bool
	err     error // the object stays in the inventory
}

// pruneOne deletes o unless it is gone, being deleted, or has pruning
// disabled.
func (a *Applier) pruneOne(ctx context.Context, o Object, dryRun bool) pruneOutcome {
	gk := schema.GroupKind{Group: o.Group, Kind: o.Kind}
	mapping, err := a.mapper.RESTMappingWithContext(ctx, gk, o.Version)
	if meta.IsNoMatchError(err) {
		mapping, err = a.mapper.RESTMappingWithContext(ctx, gk)
	}
	if meta.IsNoMatchError(err) {
		return pruneOutcome{} // the kind is gone, and its objects with it
	}
	if err != nil {
		return pruneOutcome{err: err}
	}
	live, err := a.get(ctx, mapping, o)
	if err != nil {
		return pruneOutcome{err: err}
	}
	if live == nil || live.GetDeletionTimestamp() != nil {
		return pruneOutcome{}
	}
	if live.GetAnnotations()[PruneAnnotation] == PruneDisabled {
		return pruneOutcome{}
	}
	do := metav1.DeleteOptions{
		PropagationPolicy: ptr(metav1.DeletePropagationBackground),
		// Delete exactly the object that was checked for the annotation.
		Preconditions: &metav1.Preconditions{UID: ptr(live.GetUID())},
	}
	if dryRun {
		do.DryRun = []string{metav1.DryRunAll}
	}
	err = a.resource(mapping, o.Namespace).Delete(ctx, o.Name, do)
	switch {
	case err == nil:
		return pruneOutcome{deleted: true}
	case apierrors.IsNotFound(err):
		return pruneOutcome{}
	default:
		return pruneOutcome{err: err}
	}
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
