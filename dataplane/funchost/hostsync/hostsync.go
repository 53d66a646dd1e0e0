// Package hostsync keeps a function host in sync with the cluster: it loads
// the Functions placed in the cluster (spec.placement.cluster) into a
// funchost.Host once the manager's Function controller has resolved their
// digest (and, with a scanPolicy, recorded a passing scan of their SBOM for
// the current generation), replaces them when the module or the spec
// changes, removes them when they are deleted, and reports compilation on
// the Function's Ready condition. A Registry serves the loaded Functions over HTTP.
//
// ConfigMap, Secret, URL and OCI modules are loaded (URL and OCI modules
// only when their content matches the digest), with either ABI (Reactor, or
// Command in PerRequest isolation).
package hostsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
	"github.com/cairn-platform/cairn/controllers/serverless"
	"github.com/cairn-platform/cairn/dataplane/funchost"
	"github.com/cairn-platform/cairn/dataplane/funchost/source"
	"github.com/cairn-platform/cairn/internal/conditions"
	"github.com/cairn-platform/cairn/internal/kube"
)

// mismatchRetry is how soon a Function whose module no longer matches its
// status digest is looked at again; the controller normally updates the
// digest first, which triggers a reconcile by itself.
const mismatchRetry = 2 * time.Second

// downloadRetry is how soon a URL module that could not be fetched is tried
// again.
const downloadRetry = 30 * time.Second

// Reconciler loads the cluster's Functions into a Host.
type Reconciler struct {
	// Client reads and patches Functions (cached).
	Client client.Client
	// Reader reads module ConfigMaps and Secrets directly, so the host
	// caches neither every ConfigMap nor every Secret of the cluster.
	Reader client.Reader
	// Host compiles and runs the modules.
	Host *funchost.Host
	// Registry serves the loaded Functions.
	Registry *Registry
	// HostName names this host in status messages.
	HostName string
	// HTTPClient downloads URL modules; nil uses a 60s-timeout client.
	HTTPClient *http.Client

	mu sync.Mutex
	// loaded is what serves each Function; failed is the last Load that
	// failed, not retried until the digest or the config change.
	loaded map[string]version
	failed map[string]version

	// startup tracks the Functions that existed when the host started, so
	// it reports ready only once it has tried each of them.
	startup startupTracker
}

// version is what a Function was loaded from.
type version struct {
	digest string
	cfg    funchost.Config
	// compileTime of a loaded version; err of a failed one.
	compileTime time.Duration
	err         string
}

func (v version) equal(o version) bool {
	return v.digest == o.digest && reflect.DeepEqual(v.cfg, o.cfg)
}

// +kubebuilder:rbac:groups=serverless.cairn.dev,resources=functions,verbs=get;list;watch
// +kubebuilder:rbac:groups=serverless.cairn.dev,resources=functions/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=configmaps;secrets,verbs=get

// Reconcile loads, replaces or removes one Function.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	key := Key(req.Namespace, req.Name)
	// Whatever the outcome below (loaded, failed, waiting for its digest),
	// this Function has had its turn.
	defer r.startup.seen(key)
	var fn serverlessv1alpha1.Function
	found, err := kube.GetIfExists(ctx, r.Client, req.NamespacedName, &fn)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !found || fn.DeletionTimestamp != nil || !fn.Spec.Placement.Cluster {
		r.unload(ctx, key, "the function is deleted or not placed in the cluster")
		return ctrl.Result{}, nil
	}
	src := fn.Spec.Module
	digest := fn.Status.Digest
	if digest == "" {
		// The controller has not resolved the module, or found it missing
		// or invalid: nothing to serve.
		log.V(1).Info("waiting for the Function controller to resolve the module digest")
		r.unload(ctx, key, "its module is not resolved")
		return ctrl.Result{}, nil
	}
	if !serverless.GatePassed(&fn) {
		// A scanPolicy is set and the controller has not recorded a passing
		// scan for this generation yet: load nothing new. What is loaded
		// passed for an earlier generation; the controller clears the
		// digest (unloading it, above) if this one does not pass.
		log.V(1).Info("waiting for the Function controller to scan the module's SBOM")
		return ctrl.Result{}, nil
	}
	cfg, err := configFor(&fn)
	if err != nil {
		return ctrl.Result{}, r.loadFailed(ctx, &fn, key, version{digest: digest}, err)
	}
	want := version{digest: digest, cfg: cfg}

	r.mu.Lock()
	current, isLoaded := r.loaded[key]
	failed, hasFailed := r.failed[key]
	r.mu.Unlock()
	switch {
	case isLoaded && current.equal(want):
		// Loaded already; the status patch may have failed before.
		return ctrl.Result{}, r.reportCompiled(ctx, &fn, current)
	case hasFailed && failed.equal(want):
		return ctrl.Result{}, r.reportFailed(ctx, &fn, failed)
	}

	module, problem, err := r.read(ctx, &fn)
	if err != nil {
		return ctrl.Result{}, err
	}
	if problem != "" && (src.URL != nil || src.OCI != nil) {
		// A server may be down for a while: say so, and try again later;
		// but never over another host that did compile this digest.
		if meta.IsStatusConditionTrue(fn.Status.Conditions, common.ConditionReady) {
			log.Info("download failed; another host serves this digest", "problem", problem)
			return ctrl.Result{RequeueAfter: downloadRetry}, nil
		}
		return ctrl.Result{RequeueAfter: downloadRetry}, r.report(ctx, &fn, digest, func(conds *[]metav1.Condition) {
			conditions.False(conds, fn.Generation, common.ConditionReady, serverless.ReasonDownloadFailed, problem)
		})
	}
	if problem != "" {
		// The controller will see it too and clear the digest.
		log.Info("module not found, waiting for the Function controller", "problem", problem)
		return ctrl.Result{RequeueAfter: mismatchRetry}, nil
	}
	sum := sha256.Sum256(module)
	got := "sha256:" + hex.EncodeToString(sum[:])
	if got != digest && src.URL != nil {
		// The spec pins the digest, so this is the server's content that
		// is wrong: refuse it before compiling anything. (OCI blobs are
		// fetched by digest and checked by source.PullOCI.)
		return ctrl.Result{}, r.loadFailed(ctx, &fn, key, want, fmt.Errorf("%s served %s, but the Function pins %s", src.URL.URL, got, digest))
	}
	if got != digest {
		log.Info("the module changed since the Function controller resolved it; waiting for the new digest", "status", digest, "module", got)
		return ctrl.Result{RequeueAfter: mismatchRetry}, nil
	}

	f, err := r.Host.Load(ctx, key, module, cfg)
	if err != nil {
		return ctrl.Result{}, r.loadFailed(ctx, &fn, key, want, err)
	}
	r.Registry.Set(ctx, key, digest, f)
	want.compileTime = f.CompileTime()
	r.mu.Lock()
	r.loaded[key] = want
	delete(r.failed, key)
	r.mu.Unlock()
	log.Info("serving function", "digest", digest, "compileTime", want.compileTime)
	return ctrl.Result{}, r.reportCompiled(ctx, &fn, want)
}

// read fetches fn's module: OCI modules by the layer digest the Function
// controller resolved, so every host runs the same bytes however the tag
// moves.
func (r *Reconciler) read(ctx context.Context, fn *serverlessv1alpha1.Function) (module []byte, problem string, err error) {
	oci := fn.Spec.Module.OCI
	if oci == nil {
		return source.Read(ctx, r.Reader, r.HTTPClient, fn.Namespace, fn.Spec.Module)
	}
	module, err = source.PullOCI(ctx, r.Reader, r.HTTPClient, fn.Namespace, oci, fn.Status.Digest)
	var p *source.OCIProblem
	if errors.As(err, &p) {
		return nil, p.Message, nil
	}
	return module, "", err
}

// reportCompiled sets Ready=True for the version loaded.
func (r *Reconciler) reportCompiled(ctx context.Context, fn *serverlessv1alpha1.Function, v version) error {
	return r.report(ctx, fn, v.digest, func(conds *[]metav1.Condition) {
		if reportedBefore(fn, v.digest, metav1.ConditionTrue, serverless.ReasonCompiled) && fn.Status.CompileTime != nil {
			// Another host (or this one before a restart) reported this
			// digest already: hosts must not take turns rewriting it.
			return
		}
		conditions.True(conds, fn.Generation, common.ConditionReady, serverless.ReasonCompiled,
			fmt.Sprintf("function host %s compiled %s in %s", r.HostName, v.digest, v.compileTime.Round(time.Microsecond)))
		fn.Status.CompileTime = &metav1.Duration{Duration: v.compileTime}
	})
}

// reportFailed sets Ready=False for a version that did not load.
func (r *Reconciler) reportFailed(ctx context.Context, fn *serverlessv1alpha1.Function, v version) error {
	return r.report(ctx, fn, v.digest, func(conds *[]metav1.Condition) {
		if reportedBefore(fn, v.digest, metav1.ConditionTrue, serverless.ReasonCompiled) ||
			reportedBefore(fn, v.digest, metav1.ConditionFalse, serverless.ReasonLoadFailed) {
			// Another host runs it: a failure here (logged) does not make
			// the Function unready. Or a host reported the failure already:
			// the hosts do not take turns rewriting it.
			return
		}
		conditions.False(conds, fn.Generation, common.ConditionReady, serverless.ReasonLoadFailed,
			fmt.Sprintf("function host %s could not load %s: %s", r.HostName, v.digest, v.err))
		fn.Status.CompileTime = nil
	})
}

// loadFailed records a failed Load, so it is not retried until the module or
// the spec change, and reports it on Ready. The previous version, if any,
// keeps serving.
func (r *Reconciler) loadFailed(ctx context.Context, fn *serverlessv1alpha1.Function, key string, v version, loadErr error) error {
	ctrl.LoggerFrom(ctx).Info("loading function failed", "digest", v.digest, "error", loadErr.Error())
	v.err = loadErr.Error()
	r.mu.Lock()
	r.failed[key] = v
	r.mu.Unlock()
	return r.reportFailed(ctx, fn, v)
}

// reportedBefore tells whether a host reported Ready with this status and
// reason for digest and fn's current generation.
func reportedBefore(fn *serverlessv1alpha1.Function, digest string, status metav1.ConditionStatus, reason string) bool {
	ready := meta.FindStatusCondition(fn.Status.Conditions, common.ConditionReady)
	return ready != nil && ready.Status == status && ready.Reason == reason &&
		ready.ObservedGeneration == fn.Generation && strings.Contains(ready.Message, digest)
}

// report patches the status of fn as edited by set, only while the status
// still describes digest: a host that lags behind never overwrites what
// the controller or another host wrote for a newer module. The patch holds
// the resourceVersion, so a status changed meanwhile fails it and the
// reconcile runs again on fresh data.
func (r *Reconciler) report(ctx context.Context, fn *serverlessv1alpha1.Function, digest string, set func(*[]metav1.Condition)) error {
	if fn.Status.Digest != digest {
		return nil
	}
	base := fn.DeepCopy()
	set(&fn.Status.Conditions)
	data, err := client.MergeFrom(base).Data(fn)
	if err != nil {
		return fmt.Errorf("computing status patch: %w", err)
	}
	if string(data) == "{}" {
		return nil
	}
	patch := client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
	if err := r.Client.Status().Patch(ctx, fn, patch); err != nil {
		return fmt.Errorf("patching status of %s/%s: %w", fn.Namespace, fn.Name, err)
	}
	return nil
}

// unload stops serving key, if it was served.
func (r *Reconciler) unload(ctx context.Context, key, why string) {
	r.mu.Lock()
	delete(r.loaded, key)
	delete(r.failed, key)
	r.mu.Unlock()
	if r.Registry.Remove(ctx, key) {
		ctrl.LoggerFrom(ctx).Info("stopped serving function", "reason", why)
	}
}

// configFor translates a Function's spec into the host's sandbox settings.
func configFor(fn *serverlessv1alpha1.Function) (funchost.Config, error) {
	s := fn.Spec
	cfg := funchost.Config{
		MemoryLimitPages: uint32(max(s.Limits.MemoryPages, 0)),
		MaxRequestBytes:  s.Limits.MaxRequestBytes,
		MaxResponseBytes: s.Limits.MaxResponseBytes,
		MinInstances:     int(s.Scaling.MinInstances),
		MaxInstances:     int(s.Scaling.MaxInstances),
	}
	if s.Limits.Timeout != "" {
		d, err := time.ParseDuration(string(s.Limits.Timeout))
		if err != nil {
			return cfg, fmt.Errorf("limits.timeout %q: %w", s.Limits.Timeout, err)
		}
		cfg.Timeout = d
	}
	if s.Isolation == serverlessv1alpha1.IsolationPerRequest {
		cfg.Isolation = funchost.PerRequest
	}
	if s.ABI == serverlessv1alpha1.ABICommand {
		cfg.ABI = funchost.Command
	}
	if len(s.Env) > 0 {
		cfg.Env = make(map[string]string, len(s.Env))
		for _, e := range s.Env {
			cfg.Env[e.Name] = e.Value
		}
	}
	return cfg, nil
}

// Synced returns nil once the host has tried to load every Function that
// existed when it started, so a new replica takes traffic only when it can
// serve what the others serve. Meant for a readiness check.
func (r *Reconciler) Synced() error { return r.startup.synced() }

// SetupWithManager registers the reconciler. It watches Functions only: a
// module change reaches it as a new status.digest from the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.loaded, r.failed = map[string]version{}, map[string]version{}
	if r.Registry == nil {
		r.Registry = NewRegistry()
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return nil
		}
		var fns serverlessv1alpha1.FunctionList
		if err := r.Client.List(ctx, &fns); err != nil {
			return fmt.Errorf("listing Functions at start: %w", err)
		}
		var keys []string
		for _, fn := range fns.Items {
			if fn.Spec.Placement.Cluster {
				keys = append(keys, Key(fn.Namespace, fn.Name))
			}
		}
		r.startup.start(keys)
		return nil
	})); err != nil {
		return fmt.Errorf("adding the startup listing: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&serverlessv1alpha1.Function{}).
		Named("funchost").
		Complete(r)
}

// startupTracker knows which of the Functions present at start have been
// reconciled. Reconciles may run before the listing; seen keys are kept so
// the order does not matter.
type startupTracker struct {
	mu      sync.Mutex
	listed  bool
	pending map[string]struct{}
	done    map[string]struct{}
}

func (s *startupTracker) start(keys []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listed, s.pending = true, map[string]struct{}{}
	for _, k := range keys {
		if _, ok := s.done[k]; !ok {
			s.pending[k] = struct{}{}
		}
	}
	s.done = nil // only needed until the listing
}

func (s *startupTracker) seen(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.listed {
		if s.done == nil {
			s.done = map[string]struct{}{}
		}
		s.done[key] = struct{}{}
		return
	}
	delete(s.pending, key)
}

func (s *startupTracker) synced() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.listed {
		return errors.New("the Functions have not been listed yet")
	}
	for k := range s.pending {
		return fmt.Errorf("%d Functions not tried yet, %s among them", len(s.pending), k)
	}
	return nil
}
