package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
)

// FirmwareSpec is a signed firmware image and how to roll it out.
// +kubebuilder:validation:XValidation:rule="self.signatures.threshold <= size(self.signatures.signatures)",message="signatures.threshold cannot exceed the number of signatures"
// +kubebuilder:validation:XValidation:rule="!has(self.scanPolicy) || has(self.sbom)",message="scanPolicy needs spec.sbom: a firmware image is scanned through its signed SBOM"
type FirmwareSpec struct {
	// Version of the firmware, semantic versioning 2.0 ("1.4.2", "2.0.0-rc.1").
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-((0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?(\+([0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*))?$`
	Version string `json:"version"`

	// CompatibleModels lists the hardware models (EdgeDevice
	// spec.hardware.model) that can run this image. Other devices are never
	// offered it, whatever the selector says.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	CompatibleModels []string `json:"compatibleModels"`

	// Artifact locates the image and pins its content.
	Artifact Artifact `json:"artifact"`

	// Signatures over the artifact's SHA-256 digest, verified by the
	// controller before it rolls out anything.
	Signatures Signatures `json:"signatures"`

	// Metadata locates the image in the signed TUF repository that devices
	// verify before they download or flash it.
	Metadata RepositoryTarget `json:"metadata"`

	// Rollout selects devices and paces the update.
	Rollout Rollout `json:"rollout"`

	// SBOM names the ConfigMap key holding the image's software bill of
	// materials (CycloneDX, SPDX or syft JSON; gzip-compressed when the key
	// ends in ".gz"), as "cairn firmware publish --sbom" stores it. Its
	// length and SHA-256 must equal the ones signed into the TUF target
	// ("cairn firmware sign --sbom"), so the SBOM cannot be swapped.
	// +optional
	SBOM *common.KeySelector `json:"sbom,omitempty"`

	// ScanPolicy gates the rollout on a vulnerability scan of the SBOM: no
	// device is assigned the image while findings meet failOn.
	// +optional
	ScanPolicy *common.ScanPolicy `json:"scanPolicy,omitempty"`
}

// RepositoryTarget is one target of a TUF repository kept in a ConfigMap
// (written by "cairn firmware publish").
type RepositoryTarget struct {
	// Repository names the ConfigMap holding the repository's signed
	// metadata (N.root.json, targets.json, snapshot.json, timestamp.json).
	Repository common.LocalObjectReference `json:"repository"`

	// Target is the image's path in targets.json; its length and sha256
	// there must equal the artifact's.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$`
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(s, s == '..' || s == '.')",message="target must not contain . or .. segments"
	Target string `json:"target"`
}

// Artifact is the firmware image: an HTTP(S) URL or an OCI artifact.
// +kubebuilder:validation:XValidation:rule="has(self.url) != has(self.oci)",message="artifact must set exactly one of url or oci"
type Artifact struct {
	// URL of the image (Range requests are used to resume downloads).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http'] && url(self).getHostname() != ''",message="url must be an absolute http(s) URL"
	URL *string `json:"url,omitempty"`

	// OCI artifact reference ("registry.example.com/fw/gw2:1.4.2").
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\.[a-z0-9]+([._-][a-z0-9]+)*)*(/[a-z0-9]+([._-][a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(@sha256:[a-f0-9]{64})?$`
	OCI *string `json:"oci,omitempty"`

	// SHA256 of the full image, lowercase hex.
	// +kubebuilder:validation:Pattern=`^[a-f0-9]{64}$`
	SHA256 string `json:"sha256"`

	// Size of the full image in bytes.
	// +kubebuilder:validation:Minimum=1
	Size int64 `json:"size"`
}

// Signatures are ed25519 signatures by trusted keys; Threshold of them must
// verify.
type Signatures struct {
	// TrustedKeys names a ConfigMap mapping key IDs to base64 ed25519 public
	// keys. Keys are never read from the Firmware itself.
	TrustedKeys common.LocalObjectReference `json:"trustedKeys"`

	// Threshold is how many distinct trusted keys must have signed.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16
	// +optional
	Threshold int32 `json:"threshold,omitempty"`

	// Signatures over the artifact digest.
	// +listType=map
	// +listMapKey=keyID
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Signatures []Signature `json:"signatures"`
}

// Signature is one ed25519 signature.
type Signature struct {
	// KeyID of the signing key in the trusted key ConfigMap.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	KeyID string `json:"keyID"`

	// Value is the base64 (standard, padded) 64-byte ed25519 signature.
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9+/]{86}==$`
	Value string `json:"value"`
}

// Rollout paces an update through the selected devices in waves.
type Rollout struct {
	// Selector picks EdgeDevices by label. Empty selects every compatible device.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// Waves are cumulative percentages of the selected devices, strictly
	// ascending and ending at 100 ([5, 25, 100]).
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:XValidation:rule="self[size(self) - 1].percent == 100",message="the last wave must reach 100 percent"
	// +kubebuilder:validation:XValidation:rule="self.map(w, w.percent).isSorted() && self.all(w, self.exists_one(o, o.percent == w.percent))",message="wave percentages must be strictly ascending"
	Waves []Wave `json:"waves"`

	// MaxUnavailable devices updating at once (number or percentage of the wave).
	// +kubebuilder:default="10%"
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 1 : self.matches('^([1-9][0-9]?|100)%$')",message="maxUnavailable must be a positive number or a percentage between 1% and 100%"
	// +optional
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// FailureThreshold is the percentage of failed devices in a wave that
	// halts the rollout.
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	FailureThreshold int32 `json:"failureThreshold,omitempty"`

	// DeviceTimeout is the longest a device may stay in one phase of its
	// update (scheduled but silent, downloading, verifying, ...). Past it
	// the device counts as failed and frees its maxUnavailable slot; a
	// later report from it is still taken into account. Unset waits
	// forever.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="deviceTimeout must be at least 1m"
	// +optional
	DeviceTimeout *common.Duration `json:"deviceTimeout,omitempty"`

	// Paused stops starting new device updates; running ones finish.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// MaintenanceWindow limits when devices may start an update.
	// +optional
	MaintenanceWindow *MaintenanceWindow `json:"maintenanceWindow,omitempty"`

	// AutoRollback returns failed devices to their previous slot, and the
	// devices updated in a halted wave to their previous version. Later
	// waves are never started once a wave is halted.
	// +kubebuilder:default=true
	// +optional
	AutoRollback bool `json:"autoRollback"`
}

// Wave is one step of a rollout.
type Wave struct {
	// Percent of the selected devices updated once this wave is done
	// (cumulative).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Percent int32 `json:"percent"`

	// Pause after the wave succeeds before starting the next.
	// +optional
	Pause *common.Duration `json:"pause,omitempty"`
}

// MaintenanceWindow is a recurring time window.
type MaintenanceWindow struct {
	// Start time of day, "HH:MM" (24h).
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	Start string `json:"start"`

	// Duration of the window.
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('24h')",message="duration must be longer than 0s and at most 24h"
	Duration common.Duration `json:"duration"`

	// TimeZone (IANA name) the start is in.
	// +kubebuilder:default=UTC
	// +kubebuilder:validation:MaxLength=64
	// +optional
	TimeZone string `json:"timeZone,omitempty"`

	// Days of the week; empty means every day.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=7
	Days []Weekday `json:"days,omitempty"`
}

// Weekday is a day of the week.
// +kubebuilder:validation:Enum=Mon;Tue;Wed;Thu;Fri;Sat;Sun
type Weekday string

// WaveState is the progress of one wave.
// +kubebuilder:validation:Enum=Pending;Progressing;Paused;Succeeded;Failed
type WaveState string

// DeviceCounts counts devices by update state.
type DeviceCounts struct {
	// Targeted devices (selected and compatible).
	Targeted int32 `json:"targeted"`
	// Pending devices not started.
	Pending int32 `json:"pending"`
	// Updating devices downloading, installing or rebooting.
	Updating int32 `json:"updating"`
	// Succeeded devices running the new version.
	Succeeded int32 `json:"succeeded"`
	// Failed devices.
	Failed int32 `json:"failed"`
	// RolledBack devices back on their previous version.
	RolledBack int32 `json:"rolledBack"`
}

// WaveStatus is the progress of one wave.
type WaveStatus struct {
	// Percent of the wave (from spec).
	Percent int32 `json:"percent"`
	// State of the wave.
	State WaveState `json:"state"`
	// Devices in this wave, by state.
	Devices DeviceCounts `json:"devices"`
	// StartedAt is when the wave's first device was scheduled.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// CompletedAt is when the wave succeeded or failed.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
}

// DevicePhase is where one device is in a rollout.
// +kubebuilder:validation:Enum=Pending;Scheduled;Downloading;Installing;Rebooting;Verifying;Succeeded;Failed;RollingBack;RolledBack
type DevicePhase string

// Device phases of a rollout.
const (
	DevicePending     DevicePhase = "Pending"
	DeviceScheduled   DevicePhase = "Scheduled"
	DeviceDownloading DevicePhase = "Downloading"
	DeviceInstalling  DevicePhase = "Installing"
	DeviceRebooting   DevicePhase = "Rebooting"
	DeviceVerifying   DevicePhase = "Verifying"
	DeviceSucceeded   DevicePhase = "Succeeded"
	DeviceFailed      DevicePhase = "Failed"
	DeviceRollingBack DevicePhase = "RollingBack"
	DeviceRolledBack  DevicePhase = "RolledBack"
)

// Wave states.
const (
	WavePending     WaveState = "Pending"
	WaveProgressing WaveState = "Progressing"
	WavePaused      WaveState = "Paused"
	WaveSucceeded   WaveState = "Succeeded"
	WaveFailed      WaveState = "Failed"
)

// DeviceRolloutStatus is one device's part in the rollout.
type DeviceRolloutStatus struct {
	// Name of the EdgeDevice.
	Name string `json:"name"`
	// Wave the device belongs to (index into spec.rollout.waves).
	Wave int32 `json:"wave"`
	// Phase of the device.
	Phase DevicePhase `json:"phase"`
	// FromVersion is the version the device ran before the update.
	// +optional
	FromVersion string `json:"fromVersion,omitempty"`
	// Message says why a device failed or rolled back.
	// +optional
	Message string `json:"message,omitempty"`
	// LastTransitionTime is when the phase last changed.
	// +optional
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
}

// FirmwareStatus is the observed state of a Firmware rollout.
type FirmwareStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Accepted (valid, signatures verified), Progressing, Ready
	// (rolled out), Degraded (halted or rolled back).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// CurrentWave is the index of the wave in progress.
	// +optional
	CurrentWave int32 `json:"currentWave,omitempty"`

	// Waves reports each wave.
	// +optional
	Waves []WaveStatus `json:"waves,omitempty"`

	// Devices counts all targeted devices by state.
	// +optional
	Devices *DeviceCounts `json:"devices,omitempty"`

	// Rollout identifies the rollout in the devices' assignments and
	// reports: "<name>:<first 12 hex of the image sha256>".
	// +optional
	Rollout string `json:"rollout,omitempty"`

	// Scan is the vulnerability scan of spec.sbom, with scanPolicy.
	// +optional
	Scan *common.ScanResult `json:"scan,omitempty"`

	// DeviceStatuses is each targeted device's phase.
	// +optional
	// +listType=map
	// +listMapKey=name
	DeviceStatuses []DeviceRolloutStatus `json:"deviceStatuses,omitempty"`
}

// AnnotationOTAAssignment is set on an EdgeDevice by the Firmware
// controller: the JSON OTA assignment (rollout, action, version, target,
// repository URL) the edge hub sends to the device.
const AnnotationOTAAssignment = "ota.edge.cairn.dev/assignment"

// TrustedKeysPinnedRoot is the key of the trusted-keys ConfigMap holding
// the TUF root.json the controller starts its metadata checks from;
// without it the repository's own 1.root.json is trusted.
const TrustedKeysPinnedRoot = "root.json"

// Firmware is a signed firmware image rolled out over the air to EdgeDevices.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=fw,categories={cairn,cairn-edge}
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Wave",type=integer,JSONPath=`.status.currentWave`
// +kubebuilder:printcolumn:name="Succeeded",type=integer,JSONPath=`.status.devices.succeeded`
// +kubebuilder:printcolumn:name="Targeted",type=integer,JSONPath=`.status.devices.targeted`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Firmware struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   FirmwareSpec   `json:"spec"`
	Status FirmwareStatus `json:"status,omitempty"`
}

// FirmwareList is a list of Firmware.
// +kubebuilder:object:root=true
type FirmwareList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Firmware `json:"items"`
}
