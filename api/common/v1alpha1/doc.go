// Package v1alpha1 holds small types shared by every Cairn API group:
// durations, object references and the condition vocabulary.
// +kubebuilder:object:generate=true
package v1alpha1
