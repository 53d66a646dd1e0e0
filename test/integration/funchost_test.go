package integration

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
	"github.com/cairn-platform/cairn/controllers"
	"github.com/cairn-platform/cairn/dataplane/funchost/source"
	xdsserver "github.com/cairn-platform/cairn/dataplane/xds/server"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestFunchostProcess runs the real cmd/funchost binary next to the
// in-process Function controller: a Function from a ConfigMap becomes Ready
// once the host compiled it, is served by header and by path, changes
// behaviour when its module changes without a restart, and is gone after it
// is deleted; bad modules are reported and do not disturb the others.
//
// The modules are hand-encoded reactors of a few dozen bytes: Go guests
// (about 2.5 MB) do not fit in a ConfigMap, whose data is capped at 1 MiB.
func TestFunchostProcess(t *testing.T) {
	e := requireEnv(t)
	// Tags of OCI modules are followed within a second.
	runManager(t, controllers.Config{XDS: xdsserver.New(testLogger(t)), OCIPollInterval: time.Second})
	ctx := context.Background()
	dir := t.TempDir()

	bin := buildCommand(t, dir, "funchost")
	kubeconfig := funchostKubeconfig(t, dir)
	// Other tests' Functions are not this host's business.
	ns := newNamespace(t)
	host := startFunchost(t, bin, kubeconfig, filepath.Join(dir, "cache"), "test-host", ns)
	httpAddr, metricsAddr := host.httpAddr, host.metricsAddr

	v1, v2 := echoModule(), constModule("hello from v2")
	module := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hello-module"},
		BinaryData: map[string][]byte{"hello.wasm": v1},
	}
	if err := e.Client.Create(ctx, module); err != nil {
		t.Fatal(err)
	}
	createFunction(t, ns, "hello", "hello-module", "hello.wasm")
	waitReady(t, ns, "hello", metav1.ConditionTrue, "Compiled", digestOf(v1))

	call := func(ctx context.Context, path, header, body string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+httpAddr+path, strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		if header != "" {
			req.Header.Set("x-cairn-function", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	expect := func(t *testing.T, path, header, body string, wantCode int, want string) {
		t.Helper()
		eventually(t, 20*time.Second, func(ctx context.Context) error {
			code, got, err := call(ctx, path, header, body)
			if err != nil {
				return err
			}
			if code != wantCode || !strings.Contains(got, want) {
				return fmt.Errorf("%s %s: %d %q; want %d with %q", header, path, code, got, wantCode, want)
			}
			return nil
		})
	}

	t.Run("invoked by the gateway's header and by path", func(t *testing.T) {
		expect(t, "/anything", ns+"/hello", "ping", http.StatusOK, "ping")
		expect(t, "/fn/"+ns+"/hello/some/path?q=1", "", "direct", http.StatusOK, "direct")
		expect(t, "/anything", ns+"/nope", "x", http.StatusNotFound, "not loaded on this host")
		expect(t, "/anything", "", "x", http.StatusNotFound, "x-cairn-function")
	})

	t.Run("a module from a Secret", func(t *testing.T) {
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "greeting"},
			Data:       map[string][]byte{"m": constModule("from a secret")},
		}
		if err := e.Client.Create(ctx, secret); err != nil {
			t.Fatal(err)
		}
		createFunction(t, ns, "secret", "", "", func(s *serverlessv1alpha1.FunctionSpec) {
			s.Module = serverlessv1alpha1.ModuleSource{Secret: &common.KeySelector{Name: "greeting", Key: "m"}}
			s.Limits.Timeout = "1s"
			s.Scaling = serverlessv1alpha1.Scaling{MinInstances: 2, MaxInstances: 3}
		})
		waitReady(t, ns, "secret", metav1.ConditionTrue, "Compiled", "function host test-host compiled "+digestOf(secret.Data["m"]))
		expect(t, "/", ns+"/secret", "", http.StatusOK, "from a secret")
	})

	t.Run("a module from a URL, checked against its pinned sha256", func(t *testing.T) {
		good, bad := constModule("from a url"), constModule("tampered")
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/good.wasm":
				_, _ = w.Write(good)
			case "/bad.wasm":
				_, _ = w.Write(bad)
			default:
				http.NotFound(w, r)
			}
		}))
		defer srv.Close()
		pin := func(path string, module []byte) func(*serverlessv1alpha1.FunctionSpec) {
			return func(s *serverlessv1alpha1.FunctionSpec) {
				s.Module = serverlessv1alpha1.ModuleSource{URL: &serverlessv1alpha1.URLModule{URL: srv.URL + path, SHA256: digestOf(module)[len("sha256:"):]}}
			}
		}
		createFunction(t, ns, "from-url", "", "", pin("/good.wasm", good))
		waitReady(t, ns, "from-url", metav1.ConditionTrue, "Compiled", digestOf(good))
		expect(t, "/", ns+"/from-url", "", http.StatusOK, "from a url")

		// The server answers with other bytes than the Function pins.
		createFunction(t, ns, "tampered", "", "", pin("/bad.wasm", good))
		waitReady(t, ns, "tampered", metav1.ConditionFalse, "LoadFailed", "served "+digestOf(bad)+", but the Function pins "+digestOf(good))
		expect(t, "/", ns+"/tampered", "", http.StatusNotFound, "not loaded on this host")

		createFunction(t, ns, "missing", "", "", pin("/missing.wasm", good))
		waitReady(t, ns, "missing", metav1.ConditionFalse, "DownloadFailed", "HTTP 404")
	})

	t.Run("a module from an OCI registry, pulled with a Secret, following its tag", func(t *testing.T) {
		const user, password = "puller", "s3cret"
		reg := httptest.NewServer(basicAuth(user, password, registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
		defer reg.Close()
		host := strings.TrimPrefix(reg.URL, "http://")
		creds := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
		push := func(t *testing.T, repo string, module []byte) string {
			t.Helper()
			ref, err := source.PushOCI(ctx, host+repo, module, creds, true)
			if err != nil {
				t.Fatal(err)
			}
			return ref
		}
		dockerConfig := fmt.Sprintf(`{"auths":{"http://%s":{"auth":"%s"}}}`, host, base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
		pullSecret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "registry"},
			Type:       corev1.SecretTypeDockerConfigJson,
			Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(dockerConfig)},
		}
		if err := e.Client.Create(ctx, pullSecret); err != nil {
			t.Fatal(err)
		}
		fromOCI := func(ref string, withSecret bool) func(*serverlessv1alpha1.FunctionSpec) {
			return func(s *serverlessv1alpha1.FunctionSpec) {
				s.Module = serverlessv1alpha1.ModuleSource{OCI: &serverlessv1alpha1.OCIModule{Ref: ref, Insecure: true}}
				if withSecret {
					s.Module.OCI.PullSecretRef = &common.LocalObjectReference{Name: "registry"}
				}
			}
		}

		v1, v2 := constModule("from oci v1"), constModule("from oci v2")
		artifact := push(t, "/fn/greeter:stable", v1)
		createFunction(t, ns, "from-oci", "", "", fromOCI(host+"/fn/greeter:stable", true))
		waitReady(t, ns, "from-oci", metav1.ConditionTrue, "Compiled", digestOf(v1))
		expect(t, "/", ns+"/from-oci", "", http.StatusOK, "from oci v1")
		var fn serverlessv1alpha1.Function
		if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "from-oci"}, &fn); err != nil {
			t.Fatal(err)
		}
		if fn.Status.Artifact != artifact || fn.Status.Size != int64(len(v1)) {
			t.Fatalf("status artifact %q size %d; want %q size %d", fn.Status.Artifact, fn.Status.Size, artifact, len(v1))
		}

		// The tag moves: the next poll resolves it, the host pulls and serves it.
		push(t, "/fn/greeter:stable", v2)
		waitReady(t, ns, "from-oci", metav1.ConditionTrue, "Compiled", digestOf(v2))
		expect(t, "/", ns+"/from-oci", "", http.StatusOK, "from oci v2")

		// Pinned by digest, the old artifact keeps serving v1.
		createFunction(t, ns, "pinned", "", "", fromOCI(artifact, true))
		waitReady(t, ns, "pinned", metav1.ConditionTrue, "Compiled", digestOf(v1))
		expect(t, "/", ns+"/pinned", "", http.StatusOK, "from oci v1")

		createFunction(t, ns, "no-credentials", "", "", fromOCI(host+"/fn/greeter:stable", false))
		waitReady(t, ns, "no-credentials", metav1.ConditionFalse, "PullFailed", "refused to serve")
		createFunction(t, ns, "no-tag", "", "", fromOCI(host+"/fn/greeter:nope", true))
		waitReady(t, ns, "no-tag", metav1.ConditionFalse, "ModuleNotFound", "not found in the registry")

		// An ordinary image (a tar layer) is not a wasm artifact.
		img, err := mutate.AppendLayers(empty.Image, static.NewLayer([]byte("not a module"), types.OCILayer))
		if err != nil {
			t.Fatal(err)
		}
		imageRef, err := name.ParseReference(host + "/app/server:v1")
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(imageRef, img, remote.WithAuth(creds)); err != nil {
			t.Fatal(err)
		}
		createFunction(t, ns, "an-image", "", "", fromOCI(host+"/app/server:v1", true))
		waitReady(t, ns, "an-image", metav1.ConditionFalse, "NotWebAssembly", "must hold exactly one WebAssembly layer")
		push(t, "/fn/text:v1", []byte("hello, not wasm"))
		createFunction(t, ns, "not-wasm", "", "", fromOCI(host+"/fn/text:v1", true))
		waitReady(t, ns, "not-wasm", metav1.ConditionFalse, "NotWebAssembly", "not a WebAssembly binary")
		expect(t, "/", ns+"/from-oci", "", http.StatusOK, "from oci v2")
	})

	t.Run("a new module is served without a restart", func(t *testing.T) {
		module.BinaryData["hello.wasm"] = v2
		if err := e.Client.Update(ctx, module); err != nil {
			t.Fatal(err)
		}
		waitReady(t, ns, "hello", metav1.ConditionTrue, "Compiled", digestOf(v2))
		expect(t, "/anything", ns+"/hello", "ping", http.StatusOK, "hello from v2")
	})

	t.Run("bad modules are reported and the others keep serving", func(t *testing.T) {
		bad := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-modules"},
			BinaryData: map[string][]byte{
				"text.wasm":  []byte("#!/bin/sh\necho not wasm\n"),
				"empty.wasm": []byte("\x00asm\x01\x00\x00\x00"), // valid, exports nothing
			},
		}
		if err := e.Client.Create(ctx, bad); err != nil {
			t.Fatal(err)
		}
		createFunction(t, ns, "text", "bad-modules", "text.wasm")
		createFunction(t, ns, "empty", "bad-modules", "empty.wasm")
		createFunction(t, ns, "command", "hello-module", "hello.wasm", func(s *serverlessv1alpha1.FunctionSpec) {
			s.ABI, s.Isolation = serverlessv1alpha1.ABICommand, serverlessv1alpha1.IsolationPerRequest
		})
		// A reactor deployed as a WASI command lacks _start: refused at load.
		waitReady(t, ns, "command", metav1.ConditionFalse, "LoadFailed", `missing export "_start"`)
		expect(t, "/", ns+"/command", "", http.StatusNotFound, "not loaded")
		waitReady(t, ns, "text", metav1.ConditionFalse, "NotWebAssembly", "not a WebAssembly binary")
		waitReady(t, ns, "empty", metav1.ConditionFalse, "LoadFailed", "function host test-host could not load "+digestOf(bad.BinaryData["empty.wasm"]))
		expect(t, "/", ns+"/text", "", http.StatusNotFound, "not loaded")
		expect(t, "/", ns+"/empty", "", http.StatusNotFound, "not loaded")
		expect(t, "/anything", ns+"/hello", "ping", http.StatusOK, "hello from v2")
		// The host's failure stays: the controller does not reset it to
		// NotCompiled, which would make the host retry forever.
		time.Sleep(time.Second)
		waitReady(t, ns, "empty", metav1.ConditionFalse, "LoadFailed", "could not load")
	})

	t.Run("metrics are exported", func(t *testing.T) {
		code, body, err := httpGet(ctx, "http://"+metricsAddr+"/metrics")
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /metrics: %d %v", code, err)
		}
		if !strings.Contains(body, `controller_runtime_reconcile_total{controller="funchost",result="success"}`) {
			t.Error("no successful reconcile counted for the funchost controller")
		}
		var invocations bool
		for line := range strings.Lines(body) {
			invocations = invocations || strings.HasPrefix(line, "cairn_funchost_") && strings.Contains(line, `function="`+ns+`/hello"`)
		}
		if !invocations {
			t.Errorf("no cairn_funchost_ series for %s/hello", ns)
		}
	})

	t.Run("a second host serves too and the hosts do not take turns on status", func(t *testing.T) {
		second := startFunchost(t, bin, kubeconfig, filepath.Join(dir, "cache2"), "second-host", ns)
		// Ready means every Function present at start was tried: the new
		// host serves them from its first request, no retry.
		for _, f := range []struct{ name, want string }{{"hello", "hello from v2"}, {"secret", "from a secret"}} {
			code, body, err := httpGet(ctx, "http://"+second.httpAddr+"/fn/"+ns+"/"+f.name+"/")
			if err != nil || code != http.StatusOK || body != f.want {
				t.Fatalf("second host just ready, %s: %d %q %v", f.name, code, body, err)
			}
		}
		// Both hosts have seen every Function by now (the second loaded
		// all it could); their status must hold still.
		names := []string{"hello", "secret", "empty", "command"}
		versions := map[string]string{}
		for _, name := range names {
			var fn serverlessv1alpha1.Function
			if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &fn); err != nil {
				t.Fatal(err)
			}
			versions[name] = fn.ResourceVersion
		}
		time.Sleep(time.Second)
		for _, name := range names {
			var fn serverlessv1alpha1.Function
			if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &fn); err != nil {
				t.Fatal(err)
			}
			if fn.ResourceVersion != versions[name] {
				t.Errorf("the status of %s keeps changing with two hosts: %+v", name, fn.Status.Conditions)
			}
		}
		waitReady(t, ns, "hello", metav1.ConditionTrue, "Compiled", "function host test-host compiled "+digestOf(v2))
		waitReady(t, ns, "empty", metav1.ConditionFalse, "LoadFailed", "function host test-host could not load")
		second.terminate(t)
	})

	t.Run("a deleted function is gone", func(t *testing.T) {
		fn := &serverlessv1alpha1.Function{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hello"}}
		if err := e.Client.Delete(ctx, fn); err != nil {
			t.Fatal(err)
		}
		expect(t, "/anything", ns+"/hello", "ping", http.StatusNotFound, "not loaded on this host")
		expect(t, "/fn/"+ns+"/hello/", "", "ping", http.StatusNotFound, "not loaded on this host")
	})

	// SIGTERM is what the kubelet sends: the host must drain and exit 0.
	host.terminate(t)
}

// funchostProcess is a running cmd/funchost.
type funchostProcess struct {
	cmd                              *exec.Cmd
	logs                             *syncBuffer
	exited                           chan error
	stopped                          bool
	httpAddr, probeAddr, metricsAddr string
}

// startFunchost runs the funchost binary for the Functions of namespace ns,
// until it is ready.
func startFunchost(t *testing.T, bin, kubeconfig, cacheDir, name, ns string) *funchostProcess {
	t.Helper()
	p := &funchostProcess{
		logs: &syncBuffer{}, exited: make(chan error, 1),
		httpAddr: freeAddr(t), probeAddr: freeAddr(t), metricsAddr: freeAddr(t),
	}
	p.cmd = exec.Command(bin, "--kubeconfig", kubeconfig,
		"--http-bind-address", p.httpAddr, "--health-probe-bind-address", p.probeAddr,
		"--metrics-bind-address", p.metricsAddr,
		// Other tests' Functions are not this host's business.
		"--cache-dir", cacheDir, "--host-name", name, "--watch-namespaces", ns,
		"--zap-encoder=json")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if !p.stopped {
			_ = p.cmd.Process.Kill()
			if err := <-p.exited; err != nil {
				t.Logf("killed funchost %s: %v", name, err)
			}
		}
		if t.Failed() {
			t.Logf("funchost %s output:\n%s", name, p.logs.String())
		}
	})
	eventually(t, 60*time.Second, func(ctx context.Context) error {
		code, body, err := httpGet(ctx, "http://"+p.probeAddr+"/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/readyz answered %d: %s", code, body)
		}
		return nil
	})
	return p
}

// terminate sends SIGTERM and expects a clean exit.
func (p *funchostProcess) terminate(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		p.stopped = true
		if err != nil {
			t.Fatalf("funchost exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("funchost did not stop within 30s of SIGTERM")
	}
	if !strings.Contains(p.logs.String(), `"function host stopped"`) {
		t.Errorf("funchost did not log a clean stop")
	}
}

// funchostKubeconfig installs the ServiceAccount and RBAC of
// config/funchost and returns a kubeconfig impersonating that account, so the
// host runs with exactly the permissions it ships with. The rest of the
// kustomization is checked with a server-side dry run.
func funchostKubeconfig(t *testing.T, dir string) string {
	t.Helper()
	ctx := context.Background()
	system := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cairn-system"}}
	if err := env.Client.Create(ctx, system); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, obj := range renderKustomization(t, filepath.Join(env.Root, "config", "funchost")) {
		kinds[obj.GetKind()]++
		opts := []client.ApplyOption{client.FieldOwner("cairn-test"), client.ForceOwnership}
		switch obj.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding":
		default:
			opts = append(opts, client.DryRunAll)
		}
		if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), opts...); err != nil {
			t.Fatalf("applying %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
		if obj.GetKind() == "Deployment" && obj.GetNamespace() != "cairn-system" {
			t.Errorf("the funchost Deployment is in %q", obj.GetNamespace())
		}
	}
	want := map[string]int{"ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Deployment": 1, "Service": 1}
	if !maps.Equal(kinds, want) {
		t.Errorf("config/funchost renders %v, want %v", kinds, want)
	}

	admin, err := env.Kubeconfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range cfg.AuthInfos {
		user.Impersonate = "system:serviceaccount:cairn-system:cairn-funchost"
		user.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:cairn-system", "system:authenticated"}
	}
	path := filepath.Join(dir, "funchost.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	// The impersonation holds: the host may not list Secrets.
	restCfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(restCfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.List(ctx, &corev1.SecretList{}); !apierrors.IsForbidden(err) {
		t.Errorf("the funchost account listing Secrets: %v, want Forbidden", err)
	}
	return path
}

func createFunction(t *testing.T, ns, name, configMap, key string, edit ...func(*serverlessv1alpha1.FunctionSpec)) {
	t.Helper()
	fn := &serverlessv1alpha1.Function{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: serverlessv1alpha1.FunctionSpec{
			Module:    serverlessv1alpha1.ModuleSource{ConfigMap: &common.KeySelector{Name: configMap, Key: key}},
			Placement: serverlessv1alpha1.Placement{Cluster: true},
		},
	}
	for _, e := range edit {
		e(&fn.Spec)
	}
	if err := env.Client.Create(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// waitReady waits for the Function's Ready condition, at its generation,
// with a message containing msg; a True one must come with a compile time.
func waitReady(t *testing.T, ns, name string, status metav1.ConditionStatus, reason, msg string) {
	t.Helper()
	eventually(t, 30*time.Second, func(ctx context.Context) error {
		var fn serverlessv1alpha1.Function
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &fn); err != nil {
			return err
		}
		c := meta.FindStatusCondition(fn.Status.Conditions, "Ready")
		if c == nil || c.Status != status || c.Reason != reason || !strings.Contains(c.Message, msg) || c.ObservedGeneration != fn.Generation {
			return fmt.Errorf("%s/%s Ready = %+v; want %s/%s with %q", ns, name, c, status, reason, msg)
		}
		if status == metav1.ConditionTrue && (fn.Status.CompileTime == nil || fn.Status.CompileTime.Duration <= 0) {
			return fmt.Errorf("%s/%s is Ready without a compile time", ns, name)
		}
		return nil
	})
}

func digestOf(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

// Hand-encoded reactors of the Cairn HTTP ABI v1 (see dataplane/funchost):
// one page of memory, cairn_alloc returning a fixed buffer at 1024, and a
// cairn_handle body given by the caller.

// echoModule answers with the request body.
func echoModule() []byte {
	// (i64.extend_i32_u ptr << 32) | i64.extend_i32_u len
	return reactorModule([]byte{0x20, 0x00, 0xad, 0x42, 0x20, 0x86, 0x20, 0x01, 0xad, 0x84, 0x0b}, nil)
}

// constModule answers with body, stored at 2048 by a data segment.
func constModule(body string) []byte {
	code := sleb64([]byte{0x42}, 2048<<32|int64(len(body))) // i64.const
	return reactorModule(append(code, 0x0b), []byte(body))
}

func reactorModule(handle, data []byte) []byte {
	section := func(id byte, content []byte) []byte {
		return append(append([]byte{id}, uleb(uint32(len(content)))...), content...)
	}
	str := func(s string) []byte { return append(uleb(uint32(len(s))), s...) }
	fnBody := func(code []byte) []byte {
		b := append([]byte{0x00}, code...) // no locals
		return append(uleb(uint32(len(b))), b...)
	}
	m := []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}
	// types: (i32) -> i32, (i32 i32) -> i64
	m = append(m, section(1, []byte{0x02, 0x60, 0x01, 0x7f, 0x01, 0x7f, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7e})...)
	m = append(m, section(3, []byte{0x02, 0x00, 0x01})...)
	m = append(m, section(5, []byte{0x01, 0x00, 0x01})...) // one memory, min 1 page
	exports := []byte{0x03}
	exports = append(append(exports, str("memory")...), 0x02, 0x00)
	exports = append(append(exports, str("cairn_alloc")...), 0x00, 0x00)
	exports = append(append(exports, str("cairn_handle")...), 0x00, 0x01)
	m = append(m, section(7, exports)...)
	code := []byte{0x02}
	code = append(code, fnBody([]byte{0x41, 0x80, 0x08, 0x0b})...) // i32.const 1024
	code = append(code, fnBody(handle)...)
	m = append(m, section(10, code)...)
	if data != nil {
		seg := []byte{0x01, 0x00, 0x41, 0x80, 0x10, 0x0b} // active, memory 0, at i32.const 2048
		seg = append(append(seg, uleb(uint32(len(data)))...), data...)
		m = append(m, section(11, seg)...)
	}
	return m
}

func uleb(v uint32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func sleb64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// basicAuth guards next with HTTP basic authentication, as private
// registries do.
func basicAuth(user, password string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
