package v1alpha1

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
