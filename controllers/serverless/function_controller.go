// Package serverless reconciles Functions: it resolves and checks their
// module and reports the digest the function hosts must compile.
package serverless

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/funchost/source"
	"github.com/cairn-platform/cairn/internal/conditions"
	"github.com/cairn-platform/cairn/internal/kube"
	"github.com/cairn-platform/cairn/internal/scangate"
	"github.com/cairn-platform/cairn/internal/telemetry"
)

// Condition reasons for Functions.
const (
	ReasonAccepted       = "Accepted"
	ReasonModuleNotFound = "ModuleNotFound"
	ReasonNotWasm        = "NotWebAssembly"
	ReasonNotCompiled    = "NotCompiled"
	// ReasonPullFailed: the registry of an OCI module failed or refused;
	// retried.
	ReasonPullFailed = "PullFailed"
	// Reported on Ready by the function hosts (dataplane/funchost/hostsync)
	// for the digest in status; the controller keeps them until the digest
	// changes.
	ReasonCompiled       = "Compiled"
	ReasonLoadFailed     = "LoadFailed"
	ReasonDownloadFailed = "DownloadFailed"
)

const functionModuleIndex = "function.spec.module.source"

// wasmHeader is the magic number and version 1 that start every binary module.
var wasmHeader = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// Defaults for the retry and polling of OCI modules.
const (
	DefaultOCIPollInterval = 5 * time.Minute
	pullRetry              = 30 * time.Second
)

// FunctionReconciler resolves a Function's module and records its digest.
type FunctionReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// OCIPollInterval is how often an OCI module referenced by tag is
	// resolved again to follow the tag; zero means DefaultOCIPollInterval.
	OCIPollInterval time.Duration
	// Scanner scans the SBOMs of Functions with a scanPolicy; nil leaves
	// them unloaded with ScanUnavailable (the gate fails closed).
	Scanner scangate.Scanner
	// RescanInterval is how often an unchanged SBOM is scanned again; zero
	// means DefaultRescanInterval.
	RescanInterval time.Duration

	// scans remembers the gate's last decision per Function;
	// unavailableWarned the Functions kept serving through a scanner outage
	// that has been reported already.
	scans             sync.Map // types.NamespacedName -> scanned
	unavailableWarned sync.Map // types.NamespacedName -> bool

	// resolvedAt remembers when each OCI Function's generation was last
	// resolved against its registry, so the reconciles that hosts' status
	// reports trigger do not each ask the registry again.
	resolvedAt sync.Map // types.NamespacedName -> ociResolved
}

type ociResolved struct {
	generation int64
	at         time.Time
}

// resolution is what the controller learnt of a Function's module.
type resolution struct {
	digest   string
	size     int64
	artifact string
	// reason and problem say why the module cannot be used.
	reason, problem string
	// requeue asks to resolve again: a tag to follow or a registry to retry.
	requeue time.Duration
}

// +kubebuilder:rbac:groups=serverless.cairn.dev,resources=functions,verbs=get;list;watch
// +kubebuilder:rbac:groups=serverless.cairn.dev,resources=functions/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=configmaps;secrets,verbs=get;list;watch

// Reconcile resolves one Function's module and records Accepted and Ready.
func (r *FunctionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var fn serverlessv1alpha1.Function
	if err := r.Get(ctx, req.NamespacedName, &fn); err != nil {
		if apierrors.IsNotFound(err) {
			r.resolvedAt.Delete(req.NamespacedName)
			r.scans.Delete(req.NamespacedName)
			r.unavailableWarned.Delete(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	base := fn.DeepCopy()
	gen := fn.Generation
	conds := &fn.Status.Conditions

	res, err := r.resolveModule(ctx, &fn)
	if err != nil {
		return ctrl.Result{}, err
	}
	accepted := "the module source resolves"
	if fn.Spec.ScanPolicy == nil {
		fn.Status.Scan = nil
		r.scans.Delete(req.NamespacedName)
	} else if res.problem == "" {
		gate, err := r.scanGate(ctx, &fn, res.digest)
		if err != nil {
			return ctrl.Result{}, err
		}
		if gate.result != nil {
			fn.Status.Scan = gate.result
		} else if gate.reason == ReasonSBOMNotFound {
			fn.Status.Scan = nil
		}
		res.requeue = minRequeue(res.requeue, gate.requeue)
		if !gate.keepServing {
			r.unavailableWarned.Delete(req.NamespacedName)
		}
		switch {
		case gate.keepServing:
			// Status stays as it was: the module keeps being served.
			if acc := meta.FindStatusCondition(*conds, common.ConditionAccepted); acc != nil {
				accepted = acc.Message
			}
			// One Event per outage, not one per retry.
			if _, warned := r.unavailableWarned.LoadOrStore(req.NamespacedName, true); !warned {
				kube.Warn(r.Recorder, &fn, gate.reason, "Scan", gate.problem)
			}
		case gate.problem != "":
			res.reason, res.problem = gate.reason, gate.problem
		default:
			accepted += "; " + gate.passed
		}
	}
	if res.problem != "" {
		prev := meta.FindStatusCondition(base.Status.Conditions, common.ConditionAccepted)
		conditions.False(conds, gen, common.ConditionAccepted, res.reason, res.problem)
		conditions.False(conds, gen, common.ConditionReady, res.reason, res.problem)
		fn.Status.Digest, fn.Status.Size, fn.Status.Artifact, fn.Status.CompileTime = "", 0, "", nil
		if conditions.IsTrue(base.Status.Conditions, common.ConditionAccepted) || base.Status.ObservedGeneration != gen ||
			newGateProblem(prev, res.reason, res.problem) {
			action := "Resolve"
			if newGateProblem(nil, res.reason, "") {
				action = "Scan"
			}
			kube.Warn(r.Recorder, &fn, res.reason, action, res.problem)
		}
	} else {
		conditions.True(conds, gen, common.ConditionAccepted, ReasonAccepted, accepted)
		if res.digest != fn.Status.Digest || !keepReady(*conds) {
			fn.Status.CompileTime = nil
			conditions.False(conds, gen, common.ConditionReady, ReasonNotCompiled, notCompiledMessage(&fn, res.digest))
		}
		fn.Status.Digest, fn.Status.Size, fn.Status.Artifact = res.digest, res.size, res.artifact
	}
	fn.Status.ObservedGeneration = gen
	return ctrl.Result{RequeueAfter: res.requeue}, kube.PatchStatus(ctx, r.Client, &fn, base)
}

// newGateProblem tells whether a scan gate problem differs from what
// Accepted (prev) said: a new verdict is worth an Event, a repeated one is
// not.
func newGateProblem(prev *metav1.Condition, reason, problem string) bool {
	switch reason {
	case ReasonScanBlocked, ReasonScanFailed, ReasonSBOMNotFound:
		return prev == nil || prev.Reason != reason || prev.Message != problem
	case ReasonScanUnavailable:
		return prev == nil || prev.Reason != reason
	}
	return false
}

// minRequeue is the sooner of two requeues, zero meaning none.
func minRequeue(a, b time.Duration) time.Duration {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// keepReady tells whether Ready, for an unchanged digest, is left as it is:
// when True (compiled), and when a function host reported it cannot load
// the module. Resetting that failure would make the hosts retry it forever.
func keepReady(conds []metav1.Condition) bool {
	ready := meta.FindStatusCondition(conds, common.ConditionReady)
	if ready == nil {
		return false
	}
	if ready.Status == metav1.ConditionTrue {
		return true
	}
	switch ready.Reason {
	case ReasonLoadFailed, ReasonDownloadFailed:
		return true
	}
	return false
}

func notCompiledMessage(fn *serverlessv1alpha1.Function, digest string) string {
	what := "the module"
	if digest != "" {
		what = digest
	}
	if fn.Spec.Placement.Cluster {
		return fmt.Sprintf("waiting for a function host to compile %s", what)
	}
	return fmt.Sprintf("waiting for edge agents to compile %s", what)
}

// resolveModule finds the module's digest ("sha256:…") and size. URL
// modules are pinned by the spec's sha256 and verified by the hosts on
// download; ConfigMap, Secret and OCI modules are read and checked here.
func (r *FunctionReconciler) resolveModule(ctx context.Context, fn *serverlessv1alpha1.Function) (resolution, error) {
	src := fn.Spec.Module
	switch {
	case src.URL != nil:
		return resolution{digest: "sha256:" + src.URL.SHA256}, nil
	case src.OCI != nil:
		return r.resolveOCI(ctx, fn)
	}
	module, problem, err := source.Read(ctx, r.Client, nil, fn.Namespace, src)
	if err != nil || problem != "" {
		return resolution{reason: ReasonModuleNotFound, problem: problem}, err
	}
	if problem := checkWasm(module); problem != "" {
		return resolution{reason: ReasonNotWasm, problem: problem}, nil
	}
	sum := sha256.Sum256(module)
	return resolution{digest: "sha256:" + hex.EncodeToString(sum[:]), size: int64(len(module))}, nil
}

// resolveOCI follows an OCI reference to its module layer. The layer is
// pulled and checked only when its digest is new; a tag is polled again.
func (r *FunctionReconciler) resolveOCI(ctx context.Context, fn *serverlessv1alpha1.Function) (resolution, error) {
	oci := fn.Spec.Module.OCI
	var poll time.Duration
	if !strings.Contains(oci.Ref, "@") {
		poll = cmp.Or(r.OCIPollInterval, DefaultOCIPollInterval)
	}
	key := client.ObjectKeyFromObject(fn)
	if v, ok := r.resolvedAt.Load(key); ok && fn.Status.Digest != "" && fn.Status.ObservedGeneration == fn.Generation {
		last := v.(ociResolved)
		if since := time.Since(last.at); last.generation == fn.Generation && (poll == 0 || since < poll) {
			// Resolved for this generation, and the tag is not due: keep
			// what status says until the poll.
			return resolution{digest: fn.Status.Digest, size: fn.Status.Size, artifact: fn.Status.Artifact, requeue: max(poll-since, 0)}, nil
		}
	}
	defer r.resolvedAt.Store(key, ociResolved{generation: fn.Generation, at: time.Now()})
	failed := func(err error) (resolution, error) {
		var p *source.OCIProblem
		if !errors.As(err, &p) {
			return resolution{}, err
		}
		switch {
		case p.NotFound:
			return resolution{reason: ReasonModuleNotFound, problem: p.Message, requeue: poll}, nil
		case p.Invalid:
			return resolution{reason: ReasonNotWasm, problem: p.Message, requeue: poll}, nil
		}
		return resolution{reason: ReasonPullFailed, problem: p.Message, requeue: pullRetry}, nil
	}
	m, err := source.ResolveOCI(ctx, r.Client, nil, fn.Namespace, oci)
	if err != nil {
		return failed(err)
	}
	res := resolution{digest: m.Digest, size: m.Size, artifact: m.Manifest, requeue: poll}
	if m.Digest == fn.Status.Digest {
		return res, nil
	}
	module, err := source.PullOCI(ctx, r.Client, nil, fn.Namespace, oci, m.Digest)
	if err != nil {
		return failed(err)
	}
	if problem := checkWasm(module); problem != "" {
		return resolution{reason: ReasonNotWasm, problem: problem, requeue: poll}, nil
	}
	return res, nil
}

// checkWasm returns why module is not a WebAssembly binary, or "".
func checkWasm(module []byte) string {
	if bytes.HasPrefix(module, wasmHeader) {
		return ""
	}
	return fmt.Sprintf("the module (%d bytes) is not a WebAssembly binary: it does not start with \\0asm version 1", len(module))
}

// SetupWithManager registers the reconciler; a Function is re-resolved when
// its module ConfigMap or Secret, or its SBOM ConfigMap, changes.
func (r *FunctionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &serverlessv1alpha1.Function{}, functionModuleIndex, func(o client.Object) []string {
		m := o.(*serverlessv1alpha1.Function).Spec.Module
		var names []string
		switch {
		case m.ConfigMap != nil:
			names = append(names, m.ConfigMap.Name)
		case m.Secret != nil:
			names = append(names, m.Secret.Name)
		case m.OCI != nil && m.OCI.PullSecretRef != nil:
			names = append(names, m.OCI.PullSecretRef.Name)
		}
		if sbom := o.(*serverlessv1alpha1.Function).Spec.SBOM; sbom != nil {
			names = append(names, sbom.Name)
		}
		return names
	}); err != nil {
		return fmt.Errorf("indexing Functions by module source: %w", err)
	}
	enqueue := kube.EnqueueReferrers(mgr.GetClient(), &serverlessv1alpha1.FunctionList{}, functionModuleIndex)
	return ctrl.NewControllerManagedBy(mgr).
		For(&serverlessv1alpha1.Function{}).
		Watches(&corev1.ConfigMap{}, enqueue).
		Watches(&corev1.Secret{}, enqueue).
		Named("function").
		Complete(telemetry.TraceReconciler("Function", r))
}
