package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
)

// GitRepoSpec says which manifests to pull from git, how often, and how to
// apply them.
// +kubebuilder:validation:XValidation:rule="!has(self.secretRef) || !self.url.startsWith('file://')",message="secretRef cannot be used with a file:// URL"
// +kubebuilder:validation:XValidation:rule="!has(self.pinImageDigests) || !self.pinImageDigests || has(self.scanPolicy)",message="pinImageDigests needs scanPolicy: only scanned images have a digest to pin"
type GitRepoSpec struct {
	// URL of the repository: https://, http://, ssh://, git://, file:// or
	// scp-like "git@host:org/repo.git".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^((https?|ssh|git|file)://[^\s]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+)$`
	URL string `json:"url"`

	// Ref selects the revision. When omitted, the remote's default branch.
	// +optional
	Ref *GitRef `json:"ref,omitempty"`

	// Path inside the repository holding the manifests (recursively).
	// +kubebuilder:default="./"
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(s, s == '..')",message="path must stay inside the repository (no '..')"
	// +optional
	Path string `json:"path,omitempty"`

	// Interval between pulls. Webhooks trigger a pull in between.
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="interval must be at least 10s"
	// +optional
	Interval common.Duration `json:"interval,omitempty"`

	// Timeout of one fetch + apply.
	// +kubebuilder:default="60s"
	// +optional
	Timeout common.Duration `json:"timeout,omitempty"`

	// SecretRef names a Secret with credentials: "username"+"password" or
	// "bearerToken" for http(s); "identity" (private key) and "known_hosts"
	// for ssh. Host keys are always verified.
	// +optional
	SecretRef *common.LocalObjectReference `json:"secretRef,omitempty"`

	// ServiceAccountName is impersonated to apply the manifests, so a GitRepo
	// can only create what that account may. Empty uses the identity the
	// GitOps applier runs as.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// TargetNamespace is set on namespaced objects that have none.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	TargetNamespace string `json:"targetNamespace,omitempty"`

	// Prune deletes objects that were applied before and are gone from git.
	// +kubebuilder:default=true
	// +optional
	Prune bool `json:"prune"`

	// Suspend stops pulling and applying; the last state stays in place.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// DriftMode: Correct re-applies objects changed in the cluster; Detect only
	// reports them in the Drifted condition.
	// +kubebuilder:default=Correct
	// +optional
	DriftMode DriftMode `json:"driftMode,omitempty"`

	// Webhook lets the git server trigger a pull (HMAC-signed payloads).
	// +optional
	Webhook *GitWebhook `json:"webhook,omitempty"`

	// ScanPolicy gates the apply on a vulnerability scan of the images the
	// manifests reference.
	// +optional
	ScanPolicy *common.ScanPolicy `json:"scanPolicy,omitempty"`

	// PinImageDigests rewrites each container image the scan gate passed to
	// the digest it scanned ("reg/app:1" → "reg/app:1@sha256:…") before
	// applying, so the image that runs is the one that was scanned even if
	// the tag moves (like Kyverno's mutateDigest). A tag moved to a new
	// image is scanned and rolled out at the next sync.
	// +optional
	PinImageDigests bool `json:"pinImageDigests,omitempty"`
}

// GitRef selects a revision; set at most one field.
// +kubebuilder:validation:XValidation:rule="[has(self.branch), has(self.tag), has(self.semver), has(self.commit)].filter(x, x).size() <= 1",message="ref must set at most one of branch, tag, semver or commit"
type GitRef struct {
	// Branch to follow.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="!self.contains('..') && !self.startsWith('/') && !self.endsWith('/') && !self.endsWith('.lock')",message="branch is not a valid git ref name"
	Branch *string `json:"branch,omitempty"`

	// Tag to check out.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Tag *string `json:"tag,omitempty"`

	// SemVer range ("^1.2", ">=1.0.0 <2.0.0"): the highest matching tag.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	SemVer *string `json:"semver,omitempty"`

	// Commit SHA to pin (40 or 64 hex characters).
	// +optional
	// +kubebuilder:validation:Pattern=`^([0-9a-f]{40}|[0-9a-f]{64})$`
	Commit *string `json:"commit,omitempty"`
}

// DriftMode is what to do about objects changed outside git.
// +kubebuilder:validation:Enum=Correct;Detect
type DriftMode string

const (
	// DriftModeCorrect re-applies drifted objects.
	DriftModeCorrect DriftMode = "Correct"
	// DriftModeDetect reports drifted objects only.
	DriftModeDetect DriftMode = "Detect"
)

// GitWebhook is a push webhook receiver.
type GitWebhook struct {
	// SecretRef names a Secret whose "token" key signs the payloads
	// (X-Hub-Signature-256 HMAC).
	SecretRef common.LocalObjectReference `json:"secretRef"`
}

// InventoryEntry is one object applied from git.
type InventoryEntry struct {
	// ID is "<namespace>_<name>_<group>_<kind>" (Flux's format).
	ID string `json:"id"`

	// Version is the object's API version.
	Version string `json:"v"`
}

// GitRepoStatus is the observed state of a GitRepo.
type GitRepoStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Accepted, Ready (last revision applied), Drifted, Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// LastHandledReconcileAt is the value of the reconcile.cairn.dev/requestedAt
	// annotation the controller last handled, so a client that set it can
	// wait for its sync to finish (as with Flux's lastHandledReconcileAt).
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`

	// LastAppliedRevision is "<ref>@sha1:<commit>" of the last applied revision.
	// +optional
	LastAppliedRevision string `json:"lastAppliedRevision,omitempty"`

	// LastAttemptedRevision is the revision of the last fetch.
	// +optional
	LastAttemptedRevision string `json:"lastAttemptedRevision,omitempty"`

	// Inventory of the applied objects, used for pruning.
	// +optional
	Inventory []InventoryEntry `json:"inventory,omitempty"`

	// ImageScans is the scan gate's result for the last attempted revision:
	// one entry per image its workloads reference. Empty without a
	// scanPolicy.
	// +optional
	// +listType=map
	// +listMapKey=image
	ImageScans []ImageScan `json:"imageScans,omitempty"`
}

// ImageScan is the vulnerability scan of one image.
type ImageScan struct {
	// Image as the manifests reference it.
	Image string `json:"image"`

	common.ScanResult `json:",inline"`
}

// GitRepo pulls manifests from a git repository and keeps the cluster in
// sync with them.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:path=gitrepos,shortName=gr,categories={cairn,cairn-gitops}
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.lastAppliedRevision`
// +kubebuilder:printcolumn:name="Suspended",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type GitRepo struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   GitRepoSpec   `json:"spec"`
	Status GitRepoStatus `json:"status,omitempty"`
}

// GitRepoList is a list of GitRepos.
// +kubebuilder:object:root=true
type GitRepoList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []GitRepo `json:"items"`
}

// ReconcileRequestAnnotation set to a new value (a timestamp) asks for a
// sync now; the webhook receiver and `kubectl annotate` use it, like Flux's
// reconcile.fluxcd.io/requestedAt.
const ReconcileRequestAnnotation = "reconcile.cairn.dev/requestedAt"

// WebhookTokenKey is the key of the webhook Secret holding the shared token.
const WebhookTokenKey = "token"
