package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
)

// EdgeDeviceSpec describes one device of the fleet and what it should do.
type EdgeDeviceSpec struct {
	// Hardware describes the device; Firmware compatibility is checked against
	// the model. Use object labels for fleet selection.
	Hardware Hardware `json:"hardware"`

	// BootstrapTokenSecretRef names a Secret whose "token" key the agent
	// presents once to join. Empty: the controller generates
	// "<device>-bootstrap", owned by the device (an existing Secret of that
	// name is used as it is).
	// +optional
	BootstrapTokenSecretRef *common.LocalObjectReference `json:"bootstrapTokenSecretRef,omitempty"`

	// Desired twin properties, sent to the device. Keys are property names,
	// values any JSON. Merged with the device's offline edits per key, last
	// writer (by hybrid logical clock) wins. Property names are 1-128
	// characters of letters, digits, '_', '.' and '-' (checked by the
	// controller: CEL cannot type a map of free-form JSON).
	// +optional
	// +kubebuilder:validation:MaxProperties=256
	Desired map[string]apiextensionsv1.JSON `json:"desired,omitempty"`

	// PacketFilters are enforced by the agent's eBPF program on the device.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	PacketFilters []PacketFilterRule `json:"packetFilters,omitempty"`

	// Functions names Functions (placed on the edge) to run on this device.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Functions []common.LocalObjectReference `json:"functions,omitempty"`

	// HeartbeatInterval of the agent; the device is Offline after three missed
	// heartbeats or when its MQTT session ends.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="heartbeatInterval must be between 1s and 1h"
	// +optional
	HeartbeatInterval common.Duration `json:"heartbeatInterval,omitempty"`
}

// Hardware identifies the kind of device.
type Hardware struct {
	// Model is the hardware model ("rpi4", "acme-gw-2").
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	Model string `json:"model"`

	// Arch is the CPU architecture (GOARCH names).
	// +kubebuilder:default=arm64
	// +optional
	Arch Arch `json:"arch,omitempty"`
}

// Arch is a CPU architecture.
// +kubebuilder:validation:Enum=amd64;arm64;arm;riscv64
type Arch string

// PacketFilterRule drops or counts matching packets on the device.
// +kubebuilder:validation:XValidation:rule="!has(self.port) || self.protocol in ['TCP', 'UDP']",message="port requires protocol TCP or UDP"
type PacketFilterRule struct {
	// Name identifies the rule in metrics.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Action on a match.
	// +kubebuilder:default=Drop
	// +optional
	Action FilterAction `json:"action,omitempty"`

	// Direction of the traffic.
	// +kubebuilder:default=Ingress
	// +optional
	Direction Direction `json:"direction,omitempty"`

	// Protocol to match.
	// +kubebuilder:default=Any
	// +optional
	Protocol Protocol `json:"protocol,omitempty"`

	// Port is the packet's destination port: the device's own port for
	// ingress, the remote service's port for egress.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`

	// CIDR of the remote address (the source for ingress, the destination
	// for egress), IPv4; empty matches any address, IPv6 included.
	// +optional
	// +kubebuilder:validation:MaxLength=18
	// +kubebuilder:validation:XValidation:rule="isCIDR(self) && cidr(self).ip().family() == 4",message="cidr must be an IPv4 CIDR such as 10.0.0.0/8: the device filter matches IPv4 remote addresses"
	CIDR string `json:"cidr,omitempty"`
}

// FilterAction is what a packet filter does with a match.
// +kubebuilder:validation:Enum=Drop;Count
type FilterAction string

// Direction of traffic relative to the device.
// +kubebuilder:validation:Enum=Ingress;Egress
type Direction string

// Protocol is an IP protocol.
// +kubebuilder:validation:Enum=TCP;UDP;ICMP;Any
type Protocol string

// DeviceFirmware reports the firmware on a device (A/B slots).
type DeviceFirmware struct {
	// Version running now.
	// +optional
	Version string `json:"version,omitempty"`

	// Slot booted from.
	// +optional
	// +kubebuilder:validation:Enum=A;B
	Slot string `json:"slot,omitempty"`

	// Pending is the version waiting for commit after an update.
	// +optional
	Pending string `json:"pending,omitempty"`

	// SHA256 of the running image.
	// +optional
	SHA256 string `json:"sha256,omitempty"`

	// Rollout the device last worked on ("<firmware>:<digest prefix>").
	// +optional
	Rollout string `json:"rollout,omitempty"`

	// Action of that rollout: Install or Rollback.
	// +optional
	Action string `json:"action,omitempty"`

	// Phase of that rollout on the device: Downloading, Installing,
	// Rebooting, Verifying, Succeeded, Failed or RolledBack.
	// +optional
	Phase string `json:"phase,omitempty"`

	// Progress of the download in percent.
	// +optional
	Progress int32 `json:"progress,omitempty"`

	// Delta is true when the image came as a binary delta.
	// +optional
	Delta bool `json:"delta,omitempty"`

	// Message says why the update failed or rolled back.
	// +optional
	Message string `json:"message,omitempty"`

	// UpdatedAt is when the device reported the phase.
	// +optional
	UpdatedAt *metav1.Time `json:"updatedAt,omitempty"`
}

// EBPFStatus reports whether packet filtering runs on the device.
type EBPFStatus struct {
	// Active is true when the eBPF program is attached.
	Active bool `json:"active"`

	// Reason it is not active (kernel refusal, missing capability).
	// +optional
	Reason string `json:"reason,omitempty"`
}

// EdgeDeviceStatus is the observed state of an EdgeDevice.
type EdgeDeviceStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Accepted, Online, Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Reported twin properties, as last reported by the device.
	// +optional
	Reported map[string]apiextensionsv1.JSON `json:"reported,omitempty"`

	// Desired is the effective desired twin: spec.desired merged with edits
	// made on the device. A property differs from spec when the device
	// changed it after the spec did (last writer wins, by hybrid logical
	// clock).
	// +optional
	Desired map[string]apiextensionsv1.JSON `json:"desired,omitempty"`

	// Twin is the hub's copy of the twin CRDT: every property with the stamp
	// that orders concurrent writes, tombstones included. It lets the hub
	// restart without losing the order of edits; people read reported and
	// desired instead.
	// +optional
	// +listType=map
	// +listMapKey=key
	// +kubebuilder:validation:MaxItems=1024
	Twin []TwinEntry `json:"twin,omitempty"`

	// LastSeen is the time of the last message from the device.
	// +optional
	LastSeen *metav1.Time `json:"lastSeen,omitempty"`

	// Firmware on the device.
	// +optional
	Firmware *DeviceFirmware `json:"firmware,omitempty"`

	// AgentVersion of the edge-agent.
	// +optional
	AgentVersion string `json:"agentVersion,omitempty"`

	// EBPF capability of the device.
	// +optional
	EBPF *EBPFStatus `json:"ebpf,omitempty"`
}

// TwinEntry is one last-writer-wins register of the twin.
type TwinEntry struct {
	// Key is "desired/<property>" or "reported/<property>".
	// +kubebuilder:validation:MaxLength=160
	Key string `json:"key"`
	// Value, absent for a deleted property.
	// +optional
	Value *apiextensionsv1.JSON `json:"value,omitempty"`
	// Stamp is the hybrid logical clock time of the write,
	// "<unix nanoseconds>.<counter>@<writer>".
	// +kubebuilder:validation:MaxLength=300
	Stamp string `json:"stamp"`
	// Deleted marks a tombstone.
	// +optional
	Deleted bool `json:"deleted,omitempty"`
	// SpecHash is, for desired properties, the sha256 of the spec value the
	// hub last stamped: a spec edit is told from a device edit by it.
	// +optional
	SpecHash string `json:"specHash,omitempty"`
}

// EdgeDevice is a device in the fleet, joined by the edge-agent.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=edev,categories={cairn,cairn-edge}
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.hardware.model`
// +kubebuilder:printcolumn:name="Online",type=string,JSONPath=`.status.conditions[?(@.type=="Online")].status`
// +kubebuilder:printcolumn:name="Firmware",type=string,JSONPath=`.status.firmware.version`
// +kubebuilder:printcolumn:name="Agent",type=string,JSONPath=`.status.agentVersion`,priority=1
// +kubebuilder:printcolumn:name="Last-Seen",type=date,JSONPath=`.status.lastSeen`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EdgeDevice struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   EdgeDeviceSpec   `json:"spec"`
	Status EdgeDeviceStatus `json:"status,omitempty"`
}

// EdgeDeviceList is a list of EdgeDevices.
// +kubebuilder:object:root=true
type EdgeDeviceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EdgeDevice `json:"items"`
}
