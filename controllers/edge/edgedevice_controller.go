// Package edge reconciles EdgeDevices and Firmware: bootstrap credentials,
// reference checks, signature verification and rollout targeting.
package edge

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
	"github.com/cairn-platform/cairn/internal/conditions"
	"github.com/cairn-platform/cairn/internal/kube"
	"github.com/cairn-platform/cairn/internal/telemetry"
)

// Condition types and reasons for EdgeDevices.
const (
	ConditionOnline = "Online"

	ReasonAccepted         = "Accepted"
	ReasonSecretNotFound   = "SecretNotFound"
	ReasonFunctionNotFound = "FunctionNotFound"
	ReasonNotJoined        = "NotJoined"
	ReasonNeverSeen        = "NeverSeen"
	ReasonInvalidProperty  = "InvalidProperty"
	ReasonOnline           = "Online"
	ReasonOffline          = "Offline"
)

// propertyName is the shape of a twin property name.
var propertyName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

const (
	edgeDeviceRefIndex = "edgedevice.spec.refs"
	// BootstrapTokenKey is the Secret key holding a device's join token.
	BootstrapTokenKey = "token"
)

// EdgeDeviceReconciler gives every device a bootstrap token and checks its
// references.
type EdgeDeviceReconciler struct {
	client.Client
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=edge.cairn.dev,resources=edgedevices,verbs=get;list;watch
// +kubebuilder:rbac:groups=edge.cairn.dev,resources=edgedevices/status,verbs=get;patch
// +kubebuilder:rbac:groups=edge.cairn.dev,resources=edgedevices/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=serverless.cairn.dev,resources=functions,verbs=get;list;watch

// Reconcile ensures the bootstrap token and records Accepted, Online and Ready.
func (r *EdgeDeviceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var dev edgev1alpha1.EdgeDevice
	if err := r.Get(ctx, req.NamespacedName, &dev); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	base := dev.DeepCopy()
	gen := dev.Generation
	conds := &dev.Status.Conditions

	if dev.Spec.BootstrapTokenSecretRef == nil {
		if err := r.ensureBootstrapSecret(ctx, &dev); err != nil {
			return ctrl.Result{}, err
		}
	}
	reason, problems, err := r.check(ctx, &dev)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(problems) > 0 {
		msg := strings.Join(problems, "; ")
		conditions.False(conds, gen, common.ConditionAccepted, reason, msg)
		conditions.False(conds, gen, common.ConditionReady, reason, msg)
		if conditions.IsTrue(base.Status.Conditions, common.ConditionAccepted) || base.Status.ObservedGeneration != gen {
			kube.Warn(r.Recorder, &dev, reason, "Validate", msg)
		}
	} else {
		conditions.True(conds, gen, common.ConditionAccepted, ReasonAccepted, "the device spec is valid and its references resolve")
		online := meta.FindStatusCondition(*conds, ConditionOnline)
		switch {
		case dev.Status.LastSeen == nil || online == nil || online.Status == metav1.ConditionUnknown:
			conditions.False(conds, gen, common.ConditionReady, ReasonNotJoined, fmt.Sprintf("waiting for the edge-agent to join with the token in Secret %q", BootstrapSecretName(&dev)))
		case online.Status == metav1.ConditionTrue:
			conditions.True(conds, gen, common.ConditionReady, ReasonOnline, "the device is accepted and connected")
		default:
			conditions.False(conds, gen, common.ConditionReady, ReasonOffline, "the device is offline: "+online.Message)
		}
	}
	if dev.Status.LastSeen == nil && !meta.IsStatusConditionPresentAndEqual(*conds, ConditionOnline, metav1.ConditionTrue) {
		conditions.Unknown(conds, gen, ConditionOnline, ReasonNeverSeen, "the device has never connected")
	}
	dev.Status.ObservedGeneration = gen
	// The edge hub writes Online and the twin into the same status: the
	// lock makes a write based on a stale copy fail and retry.
	if err := kube.PatchStatusLocked(ctx, r.Client, &dev, base); err != nil {
		if apierrors.IsConflict(err) {
			// The other writer's change is an event that reconciles again.
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// BootstrapSecretName is the Secret holding the device's join token.
func BootstrapSecretName(dev *edgev1alpha1.EdgeDevice) string {
	if ref := dev.Spec.BootstrapTokenSecretRef; ref != nil {
		return ref.Name
	}
	return dev.Name + "-bootstrap"
}

// ensureBootstrapSecret creates the generated token Secret once. It is owned
// by the device, so deleting the device revokes the token.
func (r *EdgeDeviceReconciler) ensureBootstrapSecret(ctx context.Context, dev *edgev1alpha1.EdgeDevice) error {
	key := types.NamespacedName{Namespace: dev.Namespace, Name: BootstrapSecretName(dev)}
	found, err := kube.GetIfExists(ctx, r.Client, key, &corev1.Secret{})
	if err != nil || found {
		return err
	}
	token := make([]byte, 32)
	if _, err := rand.Read(token); err != nil {
		return fmt.Errorf("generating bootstrap token: %w", err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: key.Namespace,
			Name:      key.Name,
			Labels:    map[string]string{"edge.cairn.dev/device": dev.Name},
		},
		Type: "edge.cairn.dev/bootstrap-token",
		Data: map[string][]byte{BootstrapTokenKey: []byte(base64.RawURLEncoding.EncodeToString(token))},
	}
	if err := controllerutil.SetControllerReference(dev, secret, r.Scheme()); err != nil {
		return fmt.Errorf("owning bootstrap Secret: %w", err)
	}
	if err := r.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating bootstrap Secret %s: %w", key, err)
	}
	r.Recorder.Eventf(dev, secret, corev1.EventTypeNormal, "BootstrapTokenCreated", "Create", "created bootstrap token Secret %q", key.Name)
	return nil
}

func (r *EdgeDeviceReconciler) check(ctx context.Context, dev *edgev1alpha1.EdgeDevice) (string, []string, error) {
	var secret corev1.Secret
	found, err := kube.GetIfExists(ctx, r.Client, types.NamespacedName{Namespace: dev.Namespace, Name: BootstrapSecretName(dev)}, &secret)
	if err != nil {
		return "", nil, err
	}
	if !found || len(secret.Data[BootstrapTokenKey]) == 0 {
		return ReasonSecretNotFound, []string{fmt.Sprintf("bootstrap token Secret %q not found or has no key %q", BootstrapSecretName(dev), BootstrapTokenKey)}, nil
	}
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(dev.Spec.Desired)) {
		if !propertyName.MatchString(name) {
			problems = append(problems, fmt.Sprintf("desired: property name %q must be 1-128 characters of letters, digits, '_', '.', '-', starting with a letter, digit or '_'", name))
		}
	}
	if len(problems) > 0 {
		return ReasonInvalidProperty, problems, nil
	}
	for _, ref := range dev.Spec.Functions {
		var fn serverlessv1alpha1.Function
		found, err := kube.GetIfExists(ctx, r.Client, types.NamespacedName{Namespace: dev.Namespace, Name: ref.Name}, &fn)
		if err != nil {
			return "", nil, err
		}
		switch {
		case !found:
			problems = append(problems, fmt.Sprintf("functions: Function %q not found", ref.Name))
		case fn.Spec.Placement.EdgeSelector == nil:
			problems = append(problems, fmt.Sprintf("functions: Function %q is not placed on the edge (placement.edgeSelector is empty)", ref.Name))
		}
	}
	return ReasonFunctionNotFound, problems, nil
}

// SetupWithManager registers the reconciler; a device is re-checked when its
// token Secret or one of its Functions changes.
func (r *EdgeDeviceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &edgev1alpha1.EdgeDevice{}, edgeDeviceRefIndex, func(o client.Object) []string {
		dev := o.(*edgev1alpha1.EdgeDevice)
		names := []string{BootstrapSecretName(dev)}
		for _, f := range dev.Spec.Functions {
			names = append(names, f.Name)
		}
		return names
	}); err != nil {
		return fmt.Errorf("indexing EdgeDevices by reference: %w", err)
	}
	enqueue := kube.EnqueueReferrers(mgr.GetClient(), &edgev1alpha1.EdgeDeviceList{}, edgeDeviceRefIndex)
	return ctrl.NewControllerManagedBy(mgr).
		For(&edgev1alpha1.EdgeDevice{}).
		Watches(&corev1.Secret{}, enqueue).
		Watches(&serverlessv1alpha1.Function{}, enqueue).
		Named("edgedevice").
		Complete(telemetry.TraceReconciler("EdgeDevice", r))
}
