package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
)

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func httpGet(ctx context.Context, url string) (int, string, error) {
	return httpDo(ctx, http.MethodGet, url, nil)
}

// httpDo sends one request and returns the status code and the body.
func httpDo(ctx context.Context, method, url string, body io.Reader) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(got), err
}

// TestManagerProcess runs the real manager binary against the API server:
// it must become ready, reconcile a sample of every kind to a condition,
// react to a referenced object appearing, export metrics, and stop cleanly.
func TestManagerProcess(t *testing.T) {
	e := requireEnv(t)
	ctx := context.Background()
	dir := t.TempDir()

	bin := buildCommand(t, dir, "manager")
	kubeconfig, err := e.Kubeconfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	probeAddr, metricsAddr, xdsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	logs := &syncBuffer{}
	mgr := exec.Command(bin, "--kubeconfig", kubeconfig,
		"--health-probe-bind-address", probeAddr,
		"--metrics-bind-address", metricsAddr, "--metrics-secure=false",
		"--xds-bind-address", xdsAddr, "--authz-bind-address", freeAddr(t),
		// The sample Route sends to a Function and is guarded by introspection.
		"--function-host-address", "127.0.0.1:8080", "--authz-address", "127.0.0.1:9001",
		"--zap-encoder=json")
	mgr.Stdout, mgr.Stderr = logs, logs
	if err := mgr.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- mgr.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = mgr.Process.Kill()
			if err := <-exited; err != nil {
				t.Logf("killed manager: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("manager output:\n%s", logs.String())
		}
	})

	eventually(t, 60*time.Second, func(ctx context.Context) error {
		code, body, err := httpGet(ctx, "http://"+probeAddr+"/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/readyz answered %d: %s", code, body)
		}
		return nil
	})

	applySamples(t)

	t.Run("every kind gets a condition", func(t *testing.T) {
		route, policy := &gatewayv1alpha1.Route{}, &gatewayv1alpha1.AuthPolicy{}
		repo, dev := &gitopsv1alpha1.GitRepo{}, &edgev1alpha1.EdgeDevice{}
		fw, fn := &edgev1alpha1.Firmware{}, &serverlessv1alpha1.Function{}
		checks := []struct {
			obj    client.Object
			conds  *[]metav1.Condition
			status metav1.ConditionStatus
			reason string
		}{
			// The sample Route, AuthPolicy and GitRepo point at Services and
			// Secrets that do not exist (yet); the Route is not served while
			// its AuthPolicy is not accepted.
			{key(route, "shop", "checkout"), &route.Status.Conditions, metav1.ConditionFalse, "RefNotAccepted"},
			{key(policy, "shop", "shop-auth"), &policy.Status.Conditions, metav1.ConditionFalse, "SecretNotFound"},
			{key(repo, "shop", "shop-prod"), &repo.Status.Conditions, metav1.ConditionFalse, "SecretNotFound"},
			{key(dev, "factory", "gw-line3-07"), &dev.Status.Conditions, metav1.ConditionTrue, "Accepted"},
			// Both sample signatures verify against the sample keys, but
			// its TUF repository is published by "cairn firmware publish".
			{key(fw, "factory", "acme-gw2-1.4.2"), &fw.Status.Conditions, metav1.ConditionFalse, "RepositoryNotFound"},
			{key(fn, "shop", "thumbnail"), &fn.Status.Conditions, metav1.ConditionTrue, "Accepted"},
		}
		for _, c := range checks {
			name := fmt.Sprintf("%T %s", c.obj, client.ObjectKeyFromObject(c.obj))
			eventually(t, 30*time.Second, func(ctx context.Context) error {
				if err := e.Client.Get(ctx, client.ObjectKeyFromObject(c.obj), c.obj); err != nil {
					return err
				}
				got := meta.FindStatusCondition(*c.conds, "Accepted")
				if got == nil || got.Status != c.status || got.Reason != c.reason || got.ObservedGeneration != c.obj.GetGeneration() {
					return fmt.Errorf("%s: Accepted = %+v, want %s/%s", name, got, c.status, c.reason)
				}
				return nil
			})
		}
		module, _ := base64.StdEncoding.DecodeString("AGFzbQEAAAA=") // the sample's module
		if want := fmt.Sprintf("sha256:%x", sha256.Sum256(module)); fn.Status.Digest != want || fn.Status.Size != int64(len(module)) {
			t.Errorf("function digest, size = %q, %d; want %q, %d", fn.Status.Digest, fn.Status.Size, want, len(module))
		}
		if ready := meta.FindStatusCondition(fn.Status.Conditions, "Ready"); ready == nil || ready.Reason != "NotCompiled" {
			t.Errorf("function Ready = %+v, want False/NotCompiled until a host compiles it", ready)
		}
		var token corev1.Secret
		if err := e.Client.Get(ctx, client.ObjectKey{Namespace: "factory", Name: "gw-line3-07-bootstrap"}, &token); err != nil {
			t.Errorf("bootstrap token Secret: %v", err)
		} else if len(token.Data["token"]) < 32 || len(token.OwnerReferences) != 1 {
			t.Errorf("bootstrap Secret has token of %d bytes and owners %v", len(token.Data["token"]), token.OwnerReferences)
		}
	})

	t.Run("route is accepted once its policy and backends are complete", func(t *testing.T) {
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "partner-introspection"},
			StringData: map[string]string{"clientID": "gateway", "clientSecret": "s3cret"},
		}
		if err := e.Client.Create(ctx, secret); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"checkout", "checkout-canary"} {
			svc := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
				Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(8080)}}},
			}
			if err := e.Client.Create(ctx, svc); err != nil {
				t.Fatal(err)
			}
		}
		route := &gatewayv1alpha1.Route{}
		eventually(t, 30*time.Second, func(ctx context.Context) error {
			if err := e.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "checkout"}, route); err != nil {
				return err
			}
			accepted := meta.FindStatusCondition(route.Status.Conditions, "Accepted")
			programmed := meta.FindStatusCondition(route.Status.Conditions, "Programmed")
			if accepted == nil || accepted.Status != metav1.ConditionTrue || programmed == nil || programmed.Reason != "NoProxies" {
				return fmt.Errorf("Accepted = %+v, Programmed = %+v", accepted, programmed)
			}
			return nil
		})
	})

	t.Run("metrics are exported", func(t *testing.T) {
		code, body, err := httpGet(ctx, "http://"+metricsAddr+"/metrics")
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /metrics: %d %v", code, err)
		}
		if !strings.Contains(body, `cairn_xds_gateway_updates_total{gateway="public"}`) {
			t.Error("the xDS server's metrics are not exported")
		}
		for _, controller := range []string{"gateway", "authpolicy", "gitrepo", "edgedevice", "firmware", "function"} {
			if !strings.Contains(body, fmt.Sprintf(`controller_runtime_reconcile_total{controller=%q,result="success"}`, controller)) {
				t.Errorf("no successful reconcile counted for controller %q", controller)
			}
		}
	})

	// SIGTERM is what the kubelet sends: the manager must drain and exit 0.
	if err := mgr.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("manager exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("manager did not stop within 30s of SIGTERM")
	}
	if !strings.Contains(logs.String(), `"manager stopped"`) {
		t.Errorf("manager did not log a clean stop")
	}
}

func key[T client.Object](obj T, ns, name string) T {
	obj.SetNamespace(ns)
	obj.SetName(name)
	return obj
}

// applySamples applies config/samples (namespaces first).
func applySamples(t *testing.T) {
	t.Helper()
	for _, obj := range renderKustomization(t, filepath.Join(env.Root, "config", "samples")) {
		if err := env.Client.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("cairn-test"), client.ForceOwnership); err != nil {
			t.Fatalf("applying sample %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
}
