package cli

import (
	"errors"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestSortForApplyPutsNamespacesAndCRDsFirst(t *testing.T) {
	obj := func(apiVersion, kind, name string) manifest {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(apiVersion)
		u.SetKind(kind)
		u.SetName(name)
		return manifest{origin: name, obj: u}
	}
	manifests := []manifest{
		obj("v1", "ConfigMap", "config"),
		{origin: "broken", err: errors.New("not a Kubernetes object")},
		obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "crd-1"),
		obj("test.cairn.dev/v1", "Widget", "widget"),
		obj("v1", "Namespace", "ns-1"),
		// Only the core Namespace and the apiextensions CRD kinds move.
		obj("test.cairn.dev/v1", "Namespace", "custom-namespace"),
		obj("example.com/v1", "CustomResourceDefinition", "custom-crd"),
		obj("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition", "crd-2"),
		obj("v1", "Namespace", "ns-2"),
		obj("v1", "Service", "service"),
	}

	sortForApply(manifests)

	var got []string
	for _, m := range manifests {
		got = append(got, m.origin)
	}
	want := []string{
		"ns-1", "ns-2",
		"crd-1", "crd-2",
		"config", "broken", "widget", "custom-namespace", "custom-crd", "service",
	}
	if !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
}
