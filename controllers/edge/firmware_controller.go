package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // maintenance windows name IANA zones; distroless images have no zoneinfo

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/controllers/edge/rollout"
	"github.com/cairn-platform/cairn/dataplane/ota/tuf"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
	"github.com/cairn-platform/cairn/internal/conditions"
	"github.com/cairn-platform/cairn/internal/kube"
	"github.com/cairn-platform/cairn/internal/scangate"
	"github.com/cairn-platform/cairn/internal/signing"
	"github.com/cairn-platform/cairn/internal/telemetry"
)

// ConditionProgressing is True while a rollout updates devices.
const ConditionProgressing = "Progressing"

// Condition reasons for Firmware.
const (
	ReasonOTAServerDisabled  = "OTAServerDisabled"
	ReasonNoDevices          = "NoDevices"
	ReasonRolloutInProgress  = "RolloutInProgress"
	ReasonWithinThreshold    = "WithinThreshold"
	ReasonDevicesFailed      = "DevicesFailed"
	ReasonRolloutCanceled    = "RolloutCanceled"
	ReasonSignaturesVerified = "SignaturesVerified"
	ReasonSignatureInvalid   = "SignatureInvalid"
	ReasonTrustedKeysMissing = "TrustedKeysNotFound"
	ReasonInvalid            = "Invalid"
	ReasonRepositoryNotFound = "RepositoryNotFound"
	ReasonMetadataExpired    = "MetadataExpired"
	ReasonMetadataInvalid    = "MetadataInvalid"
	ReasonTargetNotFound     = "TargetNotFound"
	ReasonTargetMismatch     = "TargetMismatch"
)

// firmwareConfigMapsIndex indexes Firmware by the ConfigMaps they read:
// trusted keys, TUF repository and SBOM.
const firmwareConfigMapsIndex = "firmware.configMaps"

// FirmwareReconciler verifies firmware signatures and metadata and drives
// the rollout: it plans with package rollout and writes each device's OTA
// assignment as an annotation the edge hub forwards to the device.
type FirmwareReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// OTAURL is the base URL devices reach the manager's OTA server at;
	// empty leaves rollouts waiting (Progressing=False).
	OTAURL string
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time

	// Scanner scans the SBOMs of Firmware with a scanPolicy; nil keeps
	// them from rolling out (the gate fails closed).
	Scanner scangate.Scanner

	// written is when each Firmware's status was last written.
	written sync.Map // types.NamespacedName → time.Time
	// scans is the last scan of each Firmware's SBOM.
	scans sync.Map // types.NamespacedName → scanEntry
}

// progressWriteInterval bounds how often a rollout's status is rewritten
// when only device progress changed: the status lists every device, and
// during a rollout device reports arrive continuously.
const progressWriteInterval = time.Second

// +kubebuilder:rbac:groups=edge.cairn.dev,resources=firmwares,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=edge.cairn.dev,resources=firmwares/finalizers,verbs=update
// +kubebuilder:rbac:groups=edge.cairn.dev,resources=firmwares/status,verbs=get;patch
// +kubebuilder:rbac:groups=edge.cairn.dev,resources=edgedevices,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile verifies one Firmware and takes its rollout one step further.
func (r *FirmwareReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var fw edgev1alpha1.Firmware
	if err := r.Get(ctx, req.NamespacedName, &fw); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.Delete(req.NamespacedName)
			r.scans.Delete(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !fw.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, &fw)
	}
	if !controllerutil.ContainsFinalizer(&fw, rolloutFinalizer) {
		orig := fw.DeepCopy()
		controllerutil.AddFinalizer(&fw, rolloutFinalizer)
		if err := r.Patch(ctx, &fw, client.MergeFrom(orig)); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding the finalizer: %w", err)
		}
	}
	base := fw.DeepCopy()
	gen := fw.Generation
	conds := &fw.Status.Conditions
	fw.Status.ObservedGeneration = gen

	reason, problems, checked, err := r.check(ctx, &fw)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(problems) > 0 {
		msg := strings.Join(problems, "; ")
		conditions.False(conds, gen, common.ConditionAccepted, reason, msg)
		conditions.False(conds, gen, common.ConditionReady, reason, "the firmware is not rolled out: "+msg)
		conditions.False(conds, gen, ConditionProgressing, reason, "no device is updated until the firmware is accepted")
		if conditions.IsTrue(base.Status.Conditions, common.ConditionAccepted) || base.Status.ObservedGeneration != gen {
			kube.Warn(r.Recorder, &fw, reason, "Verify", msg)
		}
		return ctrl.Result{}, kube.PatchStatus(ctx, r.Client, &fw, base)
	}
	conditions.True(conds, gen, common.ConditionAccepted, ReasonSignaturesVerified,
		fmt.Sprintf("signed by %s (threshold %d); target %s verified in repository %s", strings.Join(checked.verified, ", "),
			fw.Spec.Signatures.Threshold, fw.Spec.Metadata.Target, fw.Spec.Metadata.Repository.Name))
	if fw.Spec.ScanPolicy != nil {
		if res, gated := r.gate(ctx, &fw, base, checked.sbom); gated {
			return res, kube.PatchStatus(ctx, r.Client, &fw, base)
		}
	} else {
		fw.Status.Scan = nil
	}

	devices, err := r.targets(ctx, &fw)
	if err != nil {
		return ctrl.Result{}, err
	}
	if r.OTAURL == "" {
		conditions.False(conds, gen, ConditionProgressing, ReasonOTAServerDisabled, "the manager runs without --ota-public-url, so devices have nowhere to download from")
		conditions.False(conds, gen, common.ConditionReady, ReasonOTAServerDisabled, fmt.Sprintf("%d compatible device(s) selected; none is updated", len(devices)))
		fw.Status.Devices = &edgev1alpha1.DeviceCounts{Targeted: int32(len(devices)), Pending: int32(len(devices))}
		return ctrl.Result{}, kube.PatchStatus(ctx, r.Client, &fw, base)
	}
	window, _ := rollout.ParseWindow(fw.Spec.Rollout.MaintenanceWindow) // checked above
	plan := rollout.Plan(rollout.Input{
		Spec:       fw.Spec,
		Rollout:    rollout.ID(fw.Name, fw.Spec.Artifact.SHA256),
		Repository: fmt.Sprintf("%s/ota/v1/%s/%s/", strings.TrimSuffix(r.OTAURL, "/"), fw.Namespace, fw.Spec.Metadata.Repository.Name),
		Devices:    devices,
		Previous:   fw.Status,
		Window:     window,
		Now:        r.now(),
	})
	if err := r.assign(ctx, fw.Namespace, plan.Assign); err != nil {
		return ctrl.Result{}, err
	}
	status := plan.Status
	status.ObservedGeneration, status.Conditions, status.Scan = gen, fw.Status.Conditions, fw.Status.Scan
	fw.Status = status
	setRolloutConditions(&fw, plan)
	if wait := r.throttle(req.NamespacedName, base, &fw, len(plan.Assign) > 0); wait > 0 {
		// Only device progress changed: written (with its events) once
		// the interval has passed, from a fresh plan.
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	if err := kube.PatchStatus(ctx, r.Client, &fw, base); err != nil {
		return ctrl.Result{}, err
	}
	r.written.Store(req.NamespacedName, r.now())
	for _, e := range plan.Events {
		if e.Warning {
			kube.Warn(r.Recorder, &fw, e.Reason, "Rollout", e.Message)
		} else {
			r.Recorder.Eventf(&fw, nil, corev1.EventTypeNormal, e.Reason, "Rollout", "%s", e.Message)
		}
	}
	return ctrl.Result{RequeueAfter: plan.RequeueAfter}, nil
}

// throttle returns how long to hold back a status write that changes only
// device phases and counts; zero writes now. Assignments, wave states and
// conditions are written at once.
func (r *FirmwareReconciler) throttle(key types.NamespacedName, before, after *edgev1alpha1.Firmware, assigned bool) time.Duration {
	last, ok := r.written.Load(key)
	if !ok || assigned || before.Status.ObservedGeneration != after.Status.ObservedGeneration || before.Status.Rollout != after.Status.Rollout {
		return 0
	}
	if len(before.Status.Waves) != len(after.Status.Waves) || len(before.Status.Conditions) != len(after.Status.Conditions) {
		return 0
	}
	for i := range after.Status.Waves {
		if before.Status.Waves[i].State != after.Status.Waves[i].State {
			return 0
		}
	}
	for _, c := range after.Status.Conditions {
		if old := meta.FindStatusCondition(before.Status.Conditions, c.Type); old == nil || old.Status != c.Status || old.Reason != c.Reason {
			return 0
		}
	}
	return progressWriteInterval - r.now().Sub(last.(time.Time))
}

// setRolloutConditions maps the plan onto Progressing, Ready and Degraded.
func setRolloutConditions(fw *edgev1alpha1.Firmware, plan rollout.Output) {
	conds, gen := &fw.Status.Conditions, fw.Generation
	c := fw.Status.Devices
	progress := fmt.Sprintf("wave %d of %d; %d of %d devices updated, %d updating, %d failed, %d rolled back",
		fw.Status.CurrentWave+1, len(fw.Spec.Rollout.Waves), c.Succeeded, c.Targeted, c.Updating, c.Failed, c.RolledBack)
	switch {
	case plan.Halted:
		msg := fmt.Sprintf("wave %d crossed the %d%% failure threshold and the rollout stopped; %s", fw.Status.CurrentWave+1, fw.Spec.Rollout.FailureThreshold, progress)
		conditions.False(conds, gen, ConditionProgressing, rollout.ReasonHalted, msg)
		conditions.False(conds, gen, common.ConditionReady, rollout.ReasonHalted, msg)
		conditions.True(conds, gen, common.ConditionDegraded, rollout.ReasonHalted, msg)
		return
	case plan.Done:
		conditions.False(conds, gen, ConditionProgressing, rollout.ReasonComplete, progress)
		conditions.True(conds, gen, common.ConditionReady, rollout.ReasonComplete, fmt.Sprintf("all %d devices run %s", c.Targeted, fw.Spec.Version))
	case plan.Complete:
		conditions.False(conds, gen, ConditionProgressing, rollout.ReasonComplete, progress)
		conditions.False(conds, gen, common.ConditionReady, ReasonDevicesFailed, fmt.Sprintf("the rollout finished but %d of %d devices do not run %s", c.Targeted-c.Succeeded, c.Targeted, fw.Spec.Version))
	case c.Targeted == 0:
		conditions.False(conds, gen, ConditionProgressing, ReasonNoDevices, "no compatible device matches the selector")
		conditions.False(conds, gen, common.ConditionReady, ReasonNoDevices, "no compatible device matches the selector")
	case plan.Waiting == rollout.ReasonPaused:
		conditions.False(conds, gen, ConditionProgressing, rollout.ReasonPaused, "spec.rollout.paused is set; "+progress)
		conditions.False(conds, gen, common.ConditionReady, rollout.ReasonPaused, progress)
	case plan.Waiting != "":
		conditions.True(conds, gen, ConditionProgressing, plan.Waiting, fmt.Sprintf("next devices start in %s; %s", plan.RequeueAfter.Round(time.Second), progress))
		conditions.False(conds, gen, common.ConditionReady, ReasonRolloutInProgress, progress)
	default:
		conditions.True(conds, gen, ConditionProgressing, ReasonRolloutInProgress, progress)
		conditions.False(conds, gen, common.ConditionReady, ReasonRolloutInProgress, progress)
	}
	failed := c.Failed + c.RolledBack
	if failed > 0 {
		conditions.False(conds, gen, common.ConditionDegraded, ReasonWithinThreshold, fmt.Sprintf("%d device(s) failed, within the %d%% threshold of their waves", failed, fw.Spec.Rollout.FailureThreshold))
	} else {
		conditions.False(conds, gen, common.ConditionDegraded, ReasonWithinThreshold, "no device failed")
	}
}

// rolloutFinalizer lets a deleted Firmware withdraw its assignments first.
const rolloutFinalizer = "edge.cairn.dev/withdraw-assignments"

// finalize withdraws the rollout's assignments from every device (a device
// abandons a download, but finishes an update whose slot is on trial),
// then lets the Firmware go.
func (r *FirmwareReconciler) finalize(ctx context.Context, fw *edgev1alpha1.Firmware) error {
	if !controllerutil.ContainsFinalizer(fw, rolloutFinalizer) {
		return nil
	}
	var devices edgev1alpha1.EdgeDeviceList
	if err := r.List(ctx, &devices, client.InNamespace(fw.Namespace)); err != nil {
		return fmt.Errorf("listing EdgeDevices: %w", err)
	}
	id := rollout.ID(fw.Name, fw.Spec.Artifact.SHA256)
	withdraw := map[string]any{"metadata": map[string]any{"annotations": map[string]any{edgev1alpha1.AnnotationOTAAssignment: nil}}}
	patches := map[string]any{}
	for _, d := range devices.Items {
		var a protocol.OTAAssignment
		if raw, ok := d.Annotations[edgev1alpha1.AnnotationOTAAssignment]; ok && json.Unmarshal([]byte(raw), &a) == nil && a.Rollout == id {
			patches[d.Name] = withdraw
		}
	}
	if err := r.patchDevices(ctx, fw.Namespace, patches); err != nil {
		return err
	}
	if len(patches) > 0 {
		r.Recorder.Eventf(fw, nil, corev1.EventTypeNormal, ReasonRolloutCanceled, "Delete", "withdrew the assignment of %d device(s)", len(patches))
	}
	orig := fw.DeepCopy()
	controllerutil.RemoveFinalizer(fw, rolloutFinalizer)
	if err := r.Patch(ctx, fw, client.MergeFrom(orig)); err != nil {
		return fmt.Errorf("removing the finalizer: %w", err)
	}
	r.written.Delete(client.ObjectKeyFromObject(fw))
	return nil
}

// assignWorkers bounds the concurrent annotation patches of one reconcile:
// a wave of hundreds of devices is assigned at once, and one patch at a
// time waits out the API server's latency hundreds of times over.
const assignWorkers = 16

// assign writes OTA assignments as device annotations; the edge hub sends
// them to the devices.
func (r *FirmwareReconciler) assign(ctx context.Context, ns string, assign map[string]protocol.OTAAssignment) error {
	patches := make(map[string]any, len(assign))
	for name, a := range assign {
		raw, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("encoding the assignment of %s: %w", name, err)
		}
		patches[name] = map[string]any{"metadata": map[string]any{"annotations": map[string]string{edgev1alpha1.AnnotationOTAAssignment: string(raw)}}}
	}
	return r.patchDevices(ctx, ns, patches)
}

// patchDevices merge-patches EdgeDevices, assignWorkers at a time; a device
// deleted meanwhile is skipped.
func (r *FirmwareReconciler) patchDevices(ctx context.Context, ns string, patches map[string]any) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, assignWorkers)
	)
	for _, name := range slices.Sorted(maps.Keys(patches)) {
		patch, err := json.Marshal(patches[name])
		if err != nil {
			return err
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			dev := &edgev1alpha1.EdgeDevice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
			if err := r.Patch(ctx, dev, client.RawPatch(types.MergePatchType, patch)); client.IgnoreNotFound(err) != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("patching EdgeDevice %s: %w", name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *FirmwareReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// checked is what check verified.
type checked struct {
	// verified are the key IDs whose signatures verify.
	verified []string
	// sbom is spec.sbom's document, matching the signed digest.
	sbom []byte
}

// check verifies the signatures against the trusted keys, the TUF
// metadata, the SBOM against its signed digest, and the rollout fields the
// schema cannot check.
func (r *FirmwareReconciler) check(ctx context.Context, fw *edgev1alpha1.Firmware) (string, []string, checked, error) {
	var none checked
	if w := fw.Spec.Rollout.MaintenanceWindow; w != nil {
		if _, err := time.LoadLocation(w.TimeZone); err != nil {
			return ReasonInvalid, []string{fmt.Sprintf("rollout.maintenanceWindow.timeZone %q is not an IANA time zone", w.TimeZone)}, none, nil
		}
	}
	if sel := fw.Spec.Rollout.Selector; sel != nil {
		if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
			return ReasonInvalid, []string{fmt.Sprintf("rollout.selector: %v", err)}, none, nil
		}
	}
	var keys corev1.ConfigMap
	keysName := fw.Spec.Signatures.TrustedKeys.Name
	found, err := kube.GetIfExists(ctx, r.Client, types.NamespacedName{Namespace: fw.Namespace, Name: keysName}, &keys)
	if err != nil {
		return "", nil, none, err
	}
	if !found {
		return ReasonTrustedKeysMissing, []string{fmt.Sprintf("trusted keys ConfigMap %q not found", keysName)}, none, nil
	}
	sigs := make([]signing.Signature, 0, len(fw.Spec.Signatures.Signatures))
	for _, s := range fw.Spec.Signatures.Signatures {
		sigs = append(sigs, signing.Signature{KeyID: s.KeyID, Value: s.Value})
	}
	res, err := signing.Verify(fw.Spec.Artifact.SHA256, sigs, keys.Data)
	if err != nil {
		return ReasonSignatureInvalid, []string{err.Error()}, none, nil
	}
	if int32(len(res.Verified)) < fw.Spec.Signatures.Threshold {
		problems := append([]string{fmt.Sprintf("%d of the required %d signatures verify", len(res.Verified), fw.Spec.Signatures.Threshold)}, res.Problems...)
		return ReasonSignatureInvalid, problems, none, nil
	}
	target, reason, problem, err := r.checkMetadata(ctx, fw, []byte(keys.Data[edgev1alpha1.TrustedKeysPinnedRoot]))
	if err != nil || problem != "" {
		return reason, []string{problem}, none, err
	}
	out := checked{verified: res.Verified}
	if fw.Spec.SBOM != nil {
		out.sbom, reason, problem, err = r.loadSBOM(ctx, fw, target)
		if err != nil || problem != "" {
			return reason, []string{problem}, none, err
		}
	}
	return "", nil, out, nil
}

// checkMetadata verifies the repository's TUF metadata the way a device
// will, and that it lists the artifact under spec.metadata.target, so a
// release that every device would refuse is never rolled out. The
// controller starts from the pinned root, if the trusted-keys ConfigMap
// has one, else from the repository's 1.root.json; devices trust the root
// they were provisioned with.
func (r *FirmwareReconciler) checkMetadata(ctx context.Context, fw *edgev1alpha1.Firmware, pinnedRoot []byte) (target tuf.TargetFile, reason, problem string, err error) {
	repo := fw.Spec.Metadata.Repository.Name
	var cm corev1.ConfigMap
	found, err := kube.GetIfExists(ctx, r.Client, types.NamespacedName{Namespace: fw.Namespace, Name: repo}, &cm)
	if err != nil || !found {
		return target, ReasonRepositoryNotFound, fmt.Sprintf("repository ConfigMap %q not found (cairn firmware publish writes it)", repo), err
	}
	files := tuf.MapFetcher{}
	for k, v := range cm.Data {
		files[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		files[k] = v
	}
	invalid := func(err error) (tuf.TargetFile, string, string, error) {
		if errors.Is(err, tuf.ErrExpired) {
			return target, ReasonMetadataExpired, fmt.Sprintf("repository %q: %v (re-sign it with cairn firmware publish)", repo, err), nil
		}
		return target, ReasonMetadataInvalid, fmt.Sprintf("repository %q: %v", repo, err), nil
	}
	trusted := files[tuf.RootVersionFile(1)]
	if len(pinnedRoot) > 0 {
		trusted = pinnedRoot
	}
	store := &tuf.MemoryStore{}
	if err := tuf.Bootstrap(store, trusted); err != nil {
		return invalid(err)
	}
	c, err := tuf.NewClient(store, files, r.now)
	if err != nil {
		return invalid(err)
	}
	if err := c.Update(ctx); err != nil {
		return invalid(err)
	}
	target, err = c.Target(fw.Spec.Metadata.Target)
	if err != nil {
		return target, ReasonTargetNotFound, fmt.Sprintf("repository %q: %v", repo, err), nil
	}
	if err := target.Check(fw.Spec.Artifact.Size, fw.Spec.Artifact.SHA256); err != nil {
		return target, ReasonTargetMismatch, fmt.Sprintf("repository %q, target %q: %v", repo, fw.Spec.Metadata.Target, err), nil
	}
	return target, "", "", nil
}

// targets lists the devices the rollout selects that can run the image.
func (r *FirmwareReconciler) targets(ctx context.Context, fw *edgev1alpha1.Firmware) ([]rollout.Device, error) {
	selector := labels.Everything()
	if fw.Spec.Rollout.Selector != nil {
		var err error
		if selector, err = metav1.LabelSelectorAsSelector(fw.Spec.Rollout.Selector); err != nil {
			return nil, fmt.Errorf("parsing rollout selector: %w", err)
		}
	}
	var devices edgev1alpha1.EdgeDeviceList
	if err := r.List(ctx, &devices, client.InNamespace(fw.Namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return nil, fmt.Errorf("listing EdgeDevices: %w", err)
	}
	var out []rollout.Device
	for _, d := range devices.Items {
		if !slices.Contains(fw.Spec.CompatibleModels, d.Spec.Hardware.Model) || d.DeletionTimestamp != nil {
			continue
		}
		dev := rollout.Device{Name: d.Name, Firmware: d.Status.Firmware}
		if raw, ok := d.Annotations[edgev1alpha1.AnnotationOTAAssignment]; ok {
			var a protocol.OTAAssignment
			if err := json.Unmarshal([]byte(raw), &a); err == nil {
				dev.Assignment = &a
			}
		}
		out = append(out, dev)
	}
	return out, nil
}

// SetupWithManager registers the reconciler. Firmware is re-verified when its
// trusted keys or metadata change, and replanned when devices come, go,
// change labels or model, or report firmware progress (not on every
// heartbeat status update).
func (r *FirmwareReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &edgev1alpha1.Firmware{}, firmwareConfigMapsIndex, func(o client.Object) []string {
		fw := o.(*edgev1alpha1.Firmware)
		names := []string{fw.Spec.Signatures.TrustedKeys.Name, fw.Spec.Metadata.Repository.Name}
		if fw.Spec.SBOM != nil {
			names = append(names, fw.Spec.SBOM.Name)
		}
		return names
	}); err != nil {
		return fmt.Errorf("indexing Firmware by ConfigMaps: %w", err)
	}
	c := mgr.GetClient()
	return ctrl.NewControllerManagedBy(mgr).
		For(&edgev1alpha1.Firmware{}).
		Watches(&corev1.ConfigMap{}, kube.EnqueueReferrers(c, &edgev1alpha1.FirmwareList{}, firmwareConfigMapsIndex)).
		Watches(&edgev1alpha1.EdgeDevice{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return r.firmwareInNamespace(ctx, o.GetNamespace())
		}), builder.WithPredicates(predicate.Or[client.Object](predicate.LabelChangedPredicate{}, predicate.GenerationChangedPredicate{},
			predicate.AnnotationChangedPredicate{}, firmwareReportChanged))).
		Named("firmware").
		Complete(telemetry.TraceReconciler("Firmware", r))
}

// firmwareReportChanged passes device updates whose status.firmware changed.
var firmwareReportChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, okO := e.ObjectOld.(*edgev1alpha1.EdgeDevice)
		n, okN := e.ObjectNew.(*edgev1alpha1.EdgeDevice)
		return okO && okN && !equality.Semantic.DeepEqual(o.Status.Firmware, n.Status.Firmware)
	},
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
