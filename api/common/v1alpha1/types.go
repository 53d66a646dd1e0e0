package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Duration is a Go-style duration string such as "500ms", "10s", "1m30s" or
// "2h" (the Gateway API convention, GEP-2257). Units: h, m, s, ms.
// +kubebuilder:validation:Pattern=`^([0-9]{1,5}(h|m|s|ms)){1,4}$`
type Duration string

// LocalObjectReference names an object in the same namespace as the referrer.
type LocalObjectReference struct {
	// Name of the referenced object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// KeySelector selects one key of a ConfigMap or Secret in the same namespace.
type KeySelector struct {
	// Name of the ConfigMap or Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Key within the object's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// Severity of a vulnerability.
// +kubebuilder:validation:Enum=Negligible;Low;Medium;High;Critical
type Severity string

// ScanPolicy decides whether vulnerability findings block a deployment
// (a GitRepo's apply, a Firmware's rollout, a Function's load).
type ScanPolicy struct {
	// FailOn blocks the apply when a finding has this severity or higher.
	// Unset reports findings without blocking.
	// +optional
	FailOn *Severity `json:"failOn,omitempty"`

	// Ignore lists accepted vulnerabilities.
	// +optional
	// +listType=map
	// +listMapKey=id
	// +kubebuilder:validation:MaxItems=256
	Ignore []IgnoredVulnerability `json:"ignore,omitempty"`

	// VEX names a ConfigMap key with an OpenVEX document; "not_affected" and
	// "fixed" statements suppress findings.
	// +optional
	VEX *KeySelector `json:"vex,omitempty"`
}

// IgnoredVulnerability is an accepted finding, with the reason recorded.
type IgnoredVulnerability struct {
	// ID of the vulnerability (CVE-…, GHSA-…).
	// +kubebuilder:validation:Pattern=`^(CVE-[0-9]{4}-[0-9]{4,}|GHSA(-[23456789cfghjmpqrvwx]{4}){3}|[A-Z]+-[0-9A-Za-z-]+)$`
	ID string `json:"id"`

	// Reason it is accepted.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`

	// Until is when the exception expires.
	// +optional
	Until *metav1.Time `json:"until,omitempty"`
}

// ScanResult is the outcome of one vulnerability scan.
type ScanResult struct {
	// Digest of what was scanned: an image manifest, or an SBOM document.
	// +optional
	Digest string `json:"digest,omitempty"`

	// Findings counts the findings by severity.
	// +optional
	Findings map[string]int `json:"findings,omitempty"`

	// Blocking lists the findings that meet failOn and are not ignored, as
	// "ID (Severity) in package version" (at most 20).
	// +optional
	Blocking []string `json:"blocking,omitempty"`

	// Ignored lists the IDs of findings the ignore list accepted.
	// +optional
	Ignored []string `json:"ignored,omitempty"`

	// DBBuilt is when the vulnerability database used was built.
	// +optional
	DBBuilt *metav1.Time `json:"dbBuilt,omitempty"`
}

// Condition types used across Cairn resources (Kubernetes API conventions).
const (
	// ConditionAccepted is True when the spec is valid and every reference resolves.
	ConditionAccepted = "Accepted"
	// ConditionProgrammed is True when the data plane acknowledged the configuration.
	ConditionProgrammed = "Programmed"
	// ConditionReady is the summary condition: True when the object does its job.
	ConditionReady = "Ready"
	// ConditionDegraded is True when the object works only partly.
	ConditionDegraded = "Degraded"
)
