package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/cairn-platform/cairn/dataplane/xds/bootstrap"
)

// runCairn runs the CLI in-process and returns stdout, failing on a
// non-zero exit.
func runCairn(t *testing.T, args ...string) []byte {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	if code := Run(context.Background(), args, streams); code != 0 {
		t.Fatalf("cairn %s: exit code %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out.Bytes()
}

func TestEnvoyBootstrap(t *testing.T) {
	tests := []struct {
		args   []string
		opts   bootstrap.Options
		format string
	}{
		{[]string{"--gateway", "public"}, bootstrap.Options{Gateway: "public"}, "yaml"},
		{
			[]string{"--gateway", "edge", "--xds-address", "127.0.0.1:18000", "--node-id", "local", "--admin-port", "19000", "--health-port", "19002", "--max-connections", "10", "-o", "json"},
			bootstrap.Options{Gateway: "edge", XDSAddress: "127.0.0.1:18000", NodeID: "local", AdminPort: 19000, HealthPort: 19002, MaxConnections: 10},
			"json",
		},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got := runCairn(t, append([]string{"envoy", "bootstrap"}, tt.args...)...)
			b, err := bootstrap.Build(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			want, err := bootstrap.Marshal(b, tt.format)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from the builder's:\n%s", got)
			}
			if tt.format == "json" && !json.Valid(got) {
				t.Error("-o json is not JSON")
			}
			parsed, err := bootstrap.Parse(got)
			if err != nil {
				t.Fatal(err)
			}
			if parsed.GetNode().GetCluster() != tt.opts.Gateway {
				t.Errorf("node cluster = %q, want the gateway %q", parsed.GetNode().GetCluster(), tt.opts.Gateway)
			}
		})
	}
}

// TestEnvoyBootstrapInvalid checks that mistakes fail with a clear message
// and print no bootstrap.
func TestEnvoyBootstrapInvalid(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{nil, `required flag(s) "gateway" not set`},
		{[]string{"--gateway", "Public"}, `invalid gateway name "Public"`},
		{[]string{"--gateway", "public", "-o", "xml"}, `invalid output format "xml"`},
		{[]string{"--gateway", "public", "--xds-address", "cairn-xds"}, `xDS address: invalid address "cairn-xds"`},
		{[]string{"--gateway", "public", "--admin-port", "0"}, "invalid --admin-port 0"},
		{[]string{"--gateway", "public", "--health-port", "9901"}, "the admin and health ports must differ"},
		{[]string{"--gateway", "public", "--max-connections", "0"}, "invalid --max-connections 0"},
		{[]string{"--gateway", "public", "extra"}, `unknown command "extra"`},
		{[]string{"--gateway", "public", "--no-such-flag"}, "See 'cairn envoy bootstrap -h'"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			streams, _, out, errOut := genericiooptions.NewTestIOStreams()
			code := Run(context.Background(), append([]string{"envoy", "bootstrap"}, tt.args...), streams)
			if code == 0 {
				t.Fatalf("exit code 0, want non-zero; stdout: %s", out)
			}
			if out.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", out)
			}
			if !strings.HasPrefix(errOut.String(), "error: ") || !strings.Contains(errOut.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want an error containing %q", errOut, tt.wantErr)
			}
		})
	}
}

// TestEnvoyKustomization builds config/envoy as kubectl would and checks the
// example fleet: the committed bootstrap is what the CLI renders for gateway
// "public" today, and the Deployment wires it as the docs say.
func TestEnvoyKustomization(t *testing.T) {
	const dir = "../../config/envoy"
	const regenerate = "go run ./cmd/cairn envoy bootstrap --gateway public > config/envoy/bootstrap.yaml"

	committed, err := os.ReadFile(filepath.Join(dir, "bootstrap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if rendered := runCairn(t, "envoy", "bootstrap", "--gateway", "public"); !bytes.Equal(committed, rendered) {
		t.Errorf("config/envoy/bootstrap.yaml is stale; regenerate it with:\n  %s", regenerate)
	}

	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var (
		cm     *corev1.ConfigMap
		deploy *appsv1.Deployment
		svc    *corev1.Service
	)
	for _, r := range resMap.Resources() {
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var obj any
		switch r.GetKind() {
		case "ConfigMap":
			cm = &corev1.ConfigMap{}
			obj = cm
		case "Deployment":
			deploy = &appsv1.Deployment{}
			obj = deploy
		case "Service":
			svc = &corev1.Service{}
			obj = svc
		default:
			continue
		}
		if err := json.Unmarshal(data, obj); err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
	}
	if cm == nil || deploy == nil || svc == nil {
		t.Fatalf("kustomize output lacks a ConfigMap, Deployment or Service")
	}

	// The bootstrap in the ConfigMap parses and is the builder's for "public".
	parsed, err := bootstrap.Parse([]byte(cm.Data["envoy.yaml"]))
	if err != nil {
		t.Fatalf("ConfigMap %s key envoy.yaml: %v", cm.Name, err)
	}
	want, err := bootstrap.Build(bootstrap.Options{Gateway: "public"})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(parsed, want) {
		t.Errorf("the bootstrap in ConfigMap %s differs from the builder's; regenerate it with:\n  %s", cm.Name, regenerate)
	}

	// The Deployment mounts that ConfigMap (by its hashed name), names each
	// proxy after its pod, and probes /ready through the health listener.
	pod := deploy.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("containers = %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	mounted := false
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
			mounted = slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
				return m.Name == v.Name && m.MountPath == "/etc/envoy"
			})
		}
	}
	if !mounted || !slices.Contains(c.Args, "--config-path=/etc/envoy/envoy.yaml") {
		t.Errorf("the Deployment does not run Envoy with ConfigMap %s as /etc/envoy/envoy.yaml", cm.Name)
	}
	if !slices.Contains(c.Args, "--service-node=$(POD_NAME)") || !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
	}) {
		t.Error("the node id is not the pod name (--service-node=$(POD_NAME) with POD_NAME from metadata.name)")
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != 10080 || ports["health"] != int32(bootstrap.DefaultHealthPort) {
		t.Errorf("container ports = %v, want http 10080 and health %d", ports, bootstrap.DefaultHealthPort)
	}
	for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/ready" || p.HTTPGet.Port.String() != "health" {
			t.Errorf("%s probe = %v, want GET /ready on port health", name, p)
		}
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("Envoy must run as non-root with a read-only root filesystem and no capabilities")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("Envoy has no resource requests or limits")
	}

	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].TargetPort.String() != "http" {
		t.Errorf("Service %s = %+v, want a LoadBalancer with port 80 to http (10080)", svc.Name, svc.Spec)
	}
	for k, v := range svc.Spec.Selector {
		if deploy.Spec.Template.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not select the Envoy pods", k, v)
		}
	}
}
