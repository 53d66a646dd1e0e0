package cli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

var edgeDevices = schema.GroupVersionResource{Group: "edge.cairn.dev", Version: "v1alpha1", Resource: "edgedevices"}

// TestDeviceRegisterRevoke registers a device and prints its join command,
// then rotates and revokes its secrets. The EdgeDevice controller (tested
// in test/integration) is stood in for by creating the token Secret.
func TestDeviceRegisterRevoke(t *testing.T) {
	c := cluster(t)
	crds, err := envtest.InstallCRDs(c.config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join("..", "..", "config", "crd", "bases", "edge.cairn.dev_edgedevices.yaml")},
	})
	if err != nil {
		t.Fatalf("installing the EdgeDevice CRD: %v", err)
	}
	t.Cleanup(func() { _ = envtest.UninstallCRDs(c.config, envtest.CRDInstallOptions{CRDs: crds}) })
	ns := c.namespace(t)

	// The controller's part: a token Secret once the device exists.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for ctx.Err() == nil {
			if _, err := c.dynamic.Resource(edgeDevices).Namespace(ns).Get(ctx, "gw-1", metav1.GetOptions{}); err == nil {
				secret := &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "v1", "kind": "Secret",
					"metadata":   map[string]any{"name": "gw-1-bootstrap", "namespace": ns},
					"stringData": map[string]any{"token": "tok123"},
				}}
				_, _ = c.dynamic.Resource(secretsGVR).Namespace(ns).Create(ctx, secret, metav1.CreateOptions{})
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	r := mustSucceed(t, c.cairn(t, "device", "register", "gw-1", "-n", ns, "--model", "acme-gw-2", "--arch", "arm64", "--hub", "mqtt://hub.example:1883"))
	if want := "edge-agent --hub mqtt://hub.example:1883 --device " + ns + "/gw-1 --token tok123"; !strings.Contains(r.stdout, want) {
		t.Fatalf("stdout %q; want the join command %q", r.stdout, want)
	}
	dev, err := c.get(t, edgeDevices, ns, "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	if model, _, _ := unstructured.NestedString(dev.Object, "spec", "hardware", "model"); model != "acme-gw-2" {
		t.Fatalf("spec.hardware.model = %q", model)
	}

	mustSucceed(t, c.cairn(t, "device", "rotate-token", "gw-1", "-n", ns))
	if _, err := c.get(t, secretsGVR, ns, "gw-1-bootstrap"); !apierrors.IsNotFound(err) {
		t.Fatalf("bootstrap Secret after rotate-token: %v; want it deleted", err)
	}
	r = mustSucceed(t, c.cairn(t, "device", "revoke", "gw-1", "-n", ns))
	if !strings.Contains(r.stdout, "gw-1 revoked") {
		t.Fatalf("stdout %q", r.stdout)
	}

	r = mustFail(t, c.cairn(t, "device", "register", "gw-2", "-n", ns))
	if !strings.Contains(r.stderr, `required flag "model" not set`) {
		t.Fatalf("stderr %q", r.stderr)
	}
	r = mustFail(t, c.cairn(t, "device", "register", "gw-3", "-n", ns, "--model", "m", "--timeout", "300ms"))
	if !strings.Contains(r.stderr, "is the Cairn manager running?") {
		t.Fatalf("stderr %q; want a hint that no controller made the token", r.stderr)
	}
}
