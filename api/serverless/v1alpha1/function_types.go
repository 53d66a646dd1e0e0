package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
)

// FunctionSpec is a WebAssembly module and how it is run.
// +kubebuilder:validation:XValidation:rule="!has(self.triggers) || !has(self.triggers.mqtt) || size(self.triggers.mqtt) == 0 || has(self.placement.edgeSelector)",message="mqtt triggers need placement.edgeSelector: they run on edge agents"
// +kubebuilder:validation:XValidation:rule="self.abi == 'Reactor' || self.isolation == 'PerRequest'",message="abi Command needs isolation PerRequest: a WASI command runs once per instance"
// +kubebuilder:validation:XValidation:rule="!has(self.scanPolicy) || has(self.sbom)",message="scanPolicy needs spec.sbom: wasm modules carry no package list to scan"
// +kubebuilder:validation:XValidation:rule="!has(self.scanPolicy) || !has(self.scanPolicy.vex)",message="scanPolicy.vex is not supported yet; list accepted findings in scanPolicy.ignore"
type FunctionSpec struct {
	// Module is where the .wasm comes from.
	Module ModuleSource `json:"module"`

	// ABI the module implements. Reactor: exports the Cairn HTTP handler
	// (specified with the function host) and serves many requests per
	// instance. Command: a
	// WASI command reading the request body on stdin and writing the response
	// body on stdout.
	// +kubebuilder:default=Reactor
	// +optional
	ABI ABI `json:"abi,omitempty"`

	// Isolation: Pooled reuses pre-instantiated instances (fast; guest state may
	// persist between requests of this Function); PerRequest instantiates a
	// fresh instance for every request.
	// +kubebuilder:default=Pooled
	// +optional
	Isolation Isolation `json:"isolation,omitempty"`

	// Env variables visible to the guest. Nothing else of the host's
	// environment is.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Env []EnvVar `json:"env,omitempty"`

	// Limits sandbox every invocation.
	// +kubebuilder:default={}
	// +optional
	Limits Limits `json:"limits"`

	// Scaling bounds the instance pool on each host.
	// +kubebuilder:default={minInstances: 1, maxInstances: 16}
	// +optional
	Scaling Scaling `json:"scaling"`

	// Placement: in the cluster's function hosts, on edge agents, or both.
	// +kubebuilder:default={cluster: true}
	// +optional
	Placement Placement `json:"placement"`

	// Triggers that invoke the function besides Routes.
	// +optional
	Triggers *Triggers `json:"triggers,omitempty"`

	// SBOM is a ConfigMap key holding a software bill of materials of the
	// module (CycloneDX JSON, SPDX JSON or syft JSON), in data or
	// binaryData. A WebAssembly module carries no package database a
	// scanner could read, so the SBOM comes with it: generate it from the
	// module's source tree with `cairn sbom DIR` (or the toolchain's own
	// SBOM), as registries like Harbor attach SBOMs to artifacts. Used by
	// scanPolicy.
	// +optional
	SBOM *common.KeySelector `json:"sbom,omitempty"`

	// ScanPolicy gates the module on the vulnerabilities the scanner finds
	// in spec.sbom: function hosts load the module only once the
	// controller has scanned the SBOM and the findings pass (condition
	// Accepted). Needs the manager's scanner (--scanner-url); without it,
	// nothing is loaded. Unset: the module is not scanned.
	// +optional
	ScanPolicy *common.ScanPolicy `json:"scanPolicy,omitempty"`
}

// ModuleSource locates a WebAssembly module; set exactly one field.
// +kubebuilder:validation:XValidation:rule="[has(self.configMap), has(self.secret), has(self.url), has(self.oci)].filter(x, x).size() == 1",message="module must set exactly one of configMap, secret, url or oci"
type ModuleSource struct {
	// ConfigMap key holding the module in binaryData.
	// +optional
	ConfigMap *common.KeySelector `json:"configMap,omitempty"`

	// Secret key holding the module.
	// +optional
	Secret *common.KeySelector `json:"secret,omitempty"`

	// URL to download the module from, pinned by digest.
	// +optional
	URL *URLModule `json:"url,omitempty"`

	// OCI artifact holding the module as its single layer.
	// +optional
	OCI *OCIModule `json:"oci,omitempty"`
}

// URLModule is a module downloaded over HTTP(S) and verified before compiling.
type URLModule struct {
	// URL of the .wasm file.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http'] && url(self).getHostname() != ''",message="url must be an absolute http(s) URL"
	URL string `json:"url"`

	// SHA256 of the module, lowercase hex. Required: a URL's content can change.
	// +kubebuilder:validation:Pattern=`^[a-f0-9]{64}$`
	SHA256 string `json:"sha256"`
}

// OCIModule is a module stored as an OCI artifact.
type OCIModule struct {
	// Ref is "registry/repository:tag" or "…@sha256:digest".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\.[a-z0-9]+([._-][a-z0-9]+)*)*(/[a-z0-9]+([._-][a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(@sha256:[a-f0-9]{64})?$`
	Ref string `json:"ref"`

	// PullSecretRef names a kubernetes.io/dockerconfigjson Secret.
	// +optional
	PullSecretRef *common.LocalObjectReference `json:"pullSecretRef,omitempty"`

	// Insecure allows plain-HTTP registries (tests, air-gapped loopback).
	// +optional
	Insecure bool `json:"insecure,omitempty"`
}

// ABI is the calling convention between host and guest.
// +kubebuilder:validation:Enum=Reactor;Command
type ABI string

const (
	// ABIReactor is the pooled Cairn HTTP handler ABI.
	ABIReactor ABI = "Reactor"
	// ABICommand is a WASI command: stdin in, stdout out.
	ABICommand ABI = "Command"
)

// Isolation is how instances are shared between requests.
// +kubebuilder:validation:Enum=Pooled;PerRequest
type Isolation string

const (
	// IsolationPooled reuses instances.
	IsolationPooled Isolation = "Pooled"
	// IsolationPerRequest uses a fresh instance per request.
	IsolationPerRequest Isolation = "PerRequest"
)

// EnvVar is one environment variable for the guest.
type EnvVar struct {
	// Name of the variable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_]*$`
	Name string `json:"name"`

	// Value of the variable.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Value string `json:"value,omitempty"`
}

// Limits sandbox each invocation.
type Limits struct {
	// MemoryPages caps linear memory in 64 KiB pages (256 = 16 MiB).
	// +kubebuilder:default=256
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	// +optional
	MemoryPages int32 `json:"memoryPages,omitempty"`

	// Timeout of one invocation; the instance is discarded when it is hit.
	// +kubebuilder:default="5s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms') && duration(self) <= duration('5m')",message="timeout must be between 1ms and 5m"
	// +optional
	Timeout common.Duration `json:"timeout,omitempty"`

	// MaxRequestBytes is the largest request body accepted (413 above).
	// +kubebuilder:default=1048576
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=67108864
	// +optional
	MaxRequestBytes int64 `json:"maxRequestBytes,omitempty"`

	// MaxResponseBytes is the largest response body a guest may produce.
	// +kubebuilder:default=1048576
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=67108864
	// +optional
	MaxResponseBytes int64 `json:"maxResponseBytes,omitempty"`
}

// Scaling bounds the pool of instances on each host.
// +kubebuilder:validation:XValidation:rule="!has(self.minInstances) || !has(self.maxInstances) || self.minInstances <= self.maxInstances",message="minInstances must not exceed maxInstances"
type Scaling struct {
	// MinInstances kept instantiated and warm.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1024
	// +optional
	MinInstances int32 `json:"minInstances"`

	// MaxInstances alive at once; requests over it wait in line until the
	// timeout.
	// +kubebuilder:default=16
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1024
	// +optional
	MaxInstances int32 `json:"maxInstances,omitempty"`
}

// Placement says where the function runs.
// +kubebuilder:validation:XValidation:rule="(has(self.cluster) && self.cluster) || has(self.edgeSelector)",message="placement must select the cluster, edge devices, or both"
type Placement struct {
	// Cluster runs the function in the cluster's function hosts, reachable
	// through Routes.
	// +kubebuilder:default=true
	// +optional
	Cluster bool `json:"cluster"`

	// EdgeSelector runs the function on the edge agents of the matching
	// EdgeDevices.
	// +optional
	EdgeSelector *metav1.LabelSelector `json:"edgeSelector,omitempty"`
}

// Triggers invoke a function on events.
type Triggers struct {
	// MQTT topics on the device's broker connection; each message is one
	// invocation. Topics are relative to the device's own prefix.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.all(t, !t.startsWith('/') && !t.startsWith('$') && t.split('/').all(l, l == '+' || l == '#' || !(l.contains('+') || l.contains('#'))) && (!t.contains('#') || t == '#' || t.endsWith('/#')))",message="mqtt topics must be relative MQTT topic filters: '+' and '#' only as whole levels, '#' only last"
	MQTT []string `json:"mqtt,omitempty"`
}

// FunctionStatus is the observed state of a Function.
type FunctionStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Accepted (valid; a ConfigMap or Secret module is found and
	// is WebAssembly; with a scanPolicy, its SBOM passed the scan — reasons
	// SBOMNotFound, ScanBlocked, ScanFailed, ScanUnavailable otherwise),
	// Ready (compiled by the function hosts).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Digest of the module, "sha256:<hex>".
	// +optional
	Digest string `json:"digest,omitempty"`

	// Size of the module in bytes.
	// +optional
	Size int64 `json:"size,omitempty"`

	// Artifact is the OCI manifest an oci module was resolved from,
	// "registry/repository@sha256:…"; a moved tag is followed on the next poll.
	// +optional
	Artifact string `json:"artifact,omitempty"`

	// CompileTime reported by the host that compiled the current digest.
	// +optional
	CompileTime *metav1.Duration `json:"compileTime,omitempty"`

	// Scan is the last vulnerability scan of spec.sbom, when a scanPolicy
	// is set; its digest is the SBOM's.
	// +optional
	Scan *common.ScanResult `json:"scan,omitempty"`
}

// Function is a WebAssembly module served by Cairn's function hosts behind
// the gateway, and on edge agents.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=fn,categories={cairn,cairn-serverless}
// +kubebuilder:printcolumn:name="ABI",type=string,JSONPath=`.spec.abi`
// +kubebuilder:printcolumn:name="Isolation",type=string,JSONPath=`.spec.isolation`,priority=1
// +kubebuilder:printcolumn:name="Digest",type=string,JSONPath=`.status.digest`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Function struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   FunctionSpec   `json:"spec"`
	Status FunctionStatus `json:"status,omitempty"`
}

// FunctionList is a list of Functions.
// +kubebuilder:object:root=true
type FunctionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Function `json:"items"`
}
