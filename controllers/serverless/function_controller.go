// Package serverless reconciles Functions: it resolves and checks their
// module and reports the digest the function hosts must compile.
package serverless

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	corev1 "k8s.io/api/core/v1"
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
	"github.com/cairn-platform/cairn/internal/telemetry"
)

// Condition reasons for Functions.
const (
	ReasonAccepted       = "Accepted"
	ReasonModuleNotFound = "ModuleNotFound"
	ReasonNotWasm        = "NotWebAssembly"
	ReasonNotCompiled    = "NotCompiled"
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

// FunctionReconciler resolves a Function's module and records its digest.
type FunctionReconciler struct {
	client.Client
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=serverless.cairn.dev,resources=functions,verbs=get;list;watch
// +kubebuilder:rbac:groups=serverless.cairn.dev,resources=functions/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=configmaps;secrets,verbs=get;list;watch

// Reconcile resolves one Function's module and records Accepted and Ready.
func (r *FunctionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var fn serverlessv1alpha1.Function
	if err := r.Get(ctx, req.NamespacedName, &fn); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	base := fn.DeepCopy()
	gen := fn.Generation
	conds := &fn.Status.Conditions

	digest, size, reason, problem, err := r.resolveModule(ctx, &fn)
	if err != nil {
		return ctrl.Result{}, err
	}
	if problem != "" {
		conditions.False(conds, gen, common.ConditionAccepted, reason, problem)
		conditions.False(conds, gen, common.ConditionReady, reason, problem)
		fn.Status.Digest, fn.Status.Size, fn.Status.CompileTime = "", 0, nil
		if conditions.IsTrue(base.Status.Conditions, common.ConditionAccepted) || base.Status.ObservedGeneration != gen {
			kube.Warn(r.Recorder, &fn, reason, "Resolve", problem)
		}
	} else {
		conditions.True(conds, gen, common.ConditionAccepted, ReasonAccepted, "the module source resolves")
		if digest != fn.Status.Digest || !keepReady(*conds) {
			fn.Status.CompileTime = nil
			conditions.False(conds, gen, common.ConditionReady, ReasonNotCompiled, notCompiledMessage(&fn, digest))
		}
		fn.Status.Digest, fn.Status.Size = digest, size
	}
	fn.Status.ObservedGeneration = gen
	return ctrl.Result{}, kube.PatchStatus(ctx, r.Client, &fn, base)
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

// resolveModule returns the module's digest ("sha256:…") and size when the
// controller can know them. URL modules are pinned by the spec's sha256 and
// verified by the host on download; OCI modules are resolved by the host.
func (r *FunctionReconciler) resolveModule(ctx context.Context, fn *serverlessv1alpha1.Function) (digest string, size int64, reason, problem string, err error) {
	src := fn.Spec.Module
	if src.URL != nil {
		// Pinned by the spec; the hosts check the download against it.
		return "sha256:" + src.URL.SHA256, 0, "", "", nil
	}
	if src.OCI != nil {
		return "", 0, "", "", nil
	}
	module, problem, err := source.Read(ctx, r.Client, nil, fn.Namespace, src)
	if err != nil || problem != "" {
		return "", 0, ReasonModuleNotFound, problem, err
	}
	if !bytes.HasPrefix(module, wasmHeader) {
		return "", 0, ReasonNotWasm, fmt.Sprintf("the module (%d bytes) is not a WebAssembly binary: it does not start with \\0asm version 1", len(module)), nil
	}
	sum := sha256.Sum256(module)
	return "sha256:" + hex.EncodeToString(sum[:]), int64(len(module)), "", "", nil
}

// SetupWithManager registers the reconciler; a Function is re-resolved when
// its module ConfigMap or Secret changes.
func (r *FunctionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &serverlessv1alpha1.Function{}, functionModuleIndex, func(o client.Object) []string {
		m := o.(*serverlessv1alpha1.Function).Spec.Module
		switch {
		case m.ConfigMap != nil:
			return []string{m.ConfigMap.Name}
		case m.Secret != nil:
			return []string{m.Secret.Name}
		}
		return nil
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
