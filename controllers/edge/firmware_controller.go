package edge

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // maintenance windows name IANA zones; distroless images have no zoneinfo

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/internal/conditions"
	"github.com/cairn-platform/cairn/internal/kube"
	"github.com/cairn-platform/cairn/internal/signing"
	"github.com/cairn-platform/cairn/internal/telemetry"
)

// Condition reasons for Firmware.
const (
	ReasonSignaturesVerified = "SignaturesVerified"
	ReasonSignatureInvalid   = "SignatureInvalid"
	ReasonTrustedKeysMissing = "TrustedKeysNotFound"
	ReasonInvalid            = "Invalid"
	ReasonRolloutPending     = "RolloutPending"
)

const firmwareKeysIndex = "firmware.spec.signatures.trustedKeys"

// FirmwareReconciler verifies firmware signatures and counts the devices a
// rollout targets.
type FirmwareReconciler struct {
	client.Client
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=edge.cairn.dev,resources=firmwares,verbs=get;list;watch
// +kubebuilder:rbac:groups=edge.cairn.dev,resources=firmwares/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch

// Reconcile verifies one Firmware and records Accepted, Ready and device counts.
func (r *FirmwareReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var fw edgev1alpha1.Firmware
	if err := r.Get(ctx, req.NamespacedName, &fw); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	base := fw.DeepCopy()
	gen := fw.Generation
	conds := &fw.Status.Conditions

	reason, problems, verified, err := r.check(ctx, &fw)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(problems) > 0 {
		msg := strings.Join(problems, "; ")
		conditions.False(conds, gen, common.ConditionAccepted, reason, msg)
		conditions.False(conds, gen, common.ConditionReady, reason, "the firmware is not rolled out: "+msg)
		fw.Status.Devices = nil
		if conditions.IsTrue(base.Status.Conditions, common.ConditionAccepted) || base.Status.ObservedGeneration != gen {
			kube.Warn(r.Recorder, &fw, reason, "Verify", msg)
		}
	} else {
		targeted, err := r.countTargets(ctx, &fw)
		if err != nil {
			return ctrl.Result{}, err
		}
		conditions.True(conds, gen, common.ConditionAccepted, ReasonSignaturesVerified,
			fmt.Sprintf("signed by %s (threshold %d)", strings.Join(verified, ", "), fw.Spec.Signatures.Threshold))
		if fw.Status.Devices == nil || fw.Status.Devices.Succeeded < targeted || targeted == 0 {
			conditions.False(conds, gen, common.ConditionReady, ReasonRolloutPending,
				fmt.Sprintf("%d compatible device(s) selected; no device has been updated yet", targeted))
		}
		if fw.Status.Devices == nil {
			fw.Status.Devices = &edgev1alpha1.DeviceCounts{}
		}
		fw.Status.Devices.Targeted = targeted
		fw.Status.Devices.Pending = targeted - fw.Status.Devices.Updating - fw.Status.Devices.Succeeded - fw.Status.Devices.Failed - fw.Status.Devices.RolledBack
	}
	fw.Status.ObservedGeneration = gen
	return ctrl.Result{}, kube.PatchStatus(ctx, r.Client, &fw, base)
}

// check verifies the signatures against the trusted keys and the rollout
// fields the schema cannot check. It returns the verified key IDs.
func (r *FirmwareReconciler) check(ctx context.Context, fw *edgev1alpha1.Firmware) (string, []string, []string, error) {
	if w := fw.Spec.Rollout.MaintenanceWindow; w != nil {
		if _, err := time.LoadLocation(w.TimeZone); err != nil {
			return ReasonInvalid, []string{fmt.Sprintf("rollout.maintenanceWindow.timeZone %q is not an IANA time zone", w.TimeZone)}, nil, nil
		}
	}
	if sel := fw.Spec.Rollout.Selector; sel != nil {
		if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
			return ReasonInvalid, []string{fmt.Sprintf("rollout.selector: %v", err)}, nil, nil
		}
	}
	var keys corev1.ConfigMap
	keysName := fw.Spec.Signatures.TrustedKeys.Name
	found, err := kube.GetIfExists(ctx, r.Client, types.NamespacedName{Namespace: fw.Namespace, Name: keysName}, &keys)
	if err != nil {
		return "", nil, nil, err
	}
	if !found {
		return ReasonTrustedKeysMissing, []string{fmt.Sprintf("trusted keys ConfigMap %q not found", keysName)}, nil, nil
	}
	sigs := make([]signing.Signature, 0, len(fw.Spec.Signatures.Signatures))
	for _, s := range fw.Spec.Signatures.Signatures {
		sigs = append(sigs, signing.Signature{KeyID: s.KeyID, Value: s.Value})
	}
	res, err := signing.Verify(fw.Spec.Artifact.SHA256, sigs, keys.Data)
	if err != nil {
		return ReasonSignatureInvalid, []string{err.Error()}, nil, nil
	}
	if int32(len(res.Verified)) < fw.Spec.Signatures.Threshold {
		problems := append([]string{fmt.Sprintf("%d of the required %d signatures verify", len(res.Verified), fw.Spec.Signatures.Threshold)}, res.Problems...)
		return ReasonSignatureInvalid, problems, nil, nil
	}
	return "", nil, res.Verified, nil
}

// countTargets counts the devices the rollout selects that can run the image.
func (r *FirmwareReconciler) countTargets(ctx context.Context, fw *edgev1alpha1.Firmware) (int32, error) {
	selector := labels.Everything()
	if fw.Spec.Rollout.Selector != nil {
		var err error
		if selector, err = metav1.LabelSelectorAsSelector(fw.Spec.Rollout.Selector); err != nil {
			return 0, fmt.Errorf("parsing rollout selector: %w", err)
		}
	}
	var devices edgev1alpha1.EdgeDeviceList
	if err := r.List(ctx, &devices, client.InNamespace(fw.Namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return 0, fmt.Errorf("listing EdgeDevices: %w", err)
	}
	var n int32
	for _, d := range devices.Items {
		if slices.Contains(fw.Spec.CompatibleModels, d.Spec.Hardware.Model) {
			n++
		}
	}
	return n, nil
}

// SetupWithManager registers the reconciler. Firmware is re-verified when its
// trusted keys change, and re-counted when devices come, go or change labels
// or model (not on every heartbeat status update).
func (r *FirmwareReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &edgev1alpha1.Firmware{}, firmwareKeysIndex, func(o client.Object) []string {
		return []string{o.(*edgev1alpha1.Firmware).Spec.Signatures.TrustedKeys.Name}
	}); err != nil {
		return fmt.Errorf("indexing Firmware by trusted keys: %w", err)
	}
	c := mgr.GetClient()
	return ctrl.NewControllerManagedBy(mgr).
		For(&edgev1alpha1.Firmware{}).
		Watches(&corev1.ConfigMap{}, kube.EnqueueReferrers(c, &edgev1alpha1.FirmwareList{}, firmwareKeysIndex)).
		Watches(&edgev1alpha1.EdgeDevice{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return r.firmwareInNamespace(ctx, o.GetNamespace())
		}), builder.WithPredicates(predicate.Or(predicate.LabelChangedPredicate{}, predicate.GenerationChangedPredicate{}))).
		Named("firmware").
		Complete(telemetry.TraceReconciler("Firmware", r))
}

func (r *FirmwareReconciler) firmwareInNamespace(ctx context.Context, ns string) []reconcile.Request {
	var list edgev1alpha1.FirmwareList
	if err := r.List(ctx, &list, client.InNamespace(ns)); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing Firmware", "namespace", ns)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, fw := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&fw)})
	}
	return reqs
}
