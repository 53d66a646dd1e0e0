package hostsync

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/funchost"
)

// echoGuest builds dataplane/funchost/testdata/guests/echo.
func echoGuest(t *testing.T) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "echo.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "../testdata/guests/echo")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the echo guest: %v\n%s", err, b)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

func TestRegistryServesReplacesAndDrains(t *testing.T) {
	ctx := context.Background()
	wasm := echoGuest(t)
	host, err := funchost.New(ctx, funchost.Options{Logger: testr.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(ctx)
	load := func() *funchost.Function {
		f, err := host.Load(ctx, "shop/echo", wasm, funchost.Config{MaxInstances: 2})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	r := NewRegistry()
	first := load()
	r.Set(ctx, "shop/echo", "sha256:1", first)
	srv := httptest.NewServer(r)
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/fn/shop/echo/hello?x=1", "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Echo-Path"); resp.StatusCode != http.StatusOK || got != "/hello?x=1" {
		t.Errorf("direct call: %d, guest saw path %q; want 200 and /hello?x=1", resp.StatusCode, got)
	}

	// A request in flight on the replaced Function completes; the Function
	// is closed afterwards.
	var wg sync.WaitGroup
	wg.Add(1)
	var spinCode int
	go func() {
		defer wg.Done()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/spin", strings.NewReader("300"))
		req.Header.Set("x-cairn-function", "shop/echo")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
		spinCode = resp.StatusCode
	}()
	time.Sleep(100 * time.Millisecond)
	r.Set(ctx, "shop/echo", "sha256:2", load())
	if d, _ := r.Digest("shop/echo"); d != "sha256:2" {
		t.Errorf("digest %q after the replacement", d)
	}
	wg.Wait()
	if spinCode != http.StatusOK {
		t.Errorf("the request in flight during the replacement got %d", spinCode)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := first.Invoke(ctx, funchost.Request{Method: "GET", Path: "/count"})
		if errors.Is(err, funchost.ErrClosed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replaced function was not closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if !r.Remove(ctx, "shop/echo") || r.Len() != 0 {
		t.Error("Remove did not remove the function")
	}
	resp, err = http.Get(srv.URL + "/fn/shop/echo/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("removed function answered %d", resp.StatusCode)
	}
	if err := r.Close(ctx); err != nil {
		t.Error(err)
	}
}

func TestConfigFor(t *testing.T) {
	fn := &serverlessv1alpha1.Function{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "f"},
		Spec: serverlessv1alpha1.FunctionSpec{
			Isolation: serverlessv1alpha1.IsolationPerRequest,
			Env:       []serverlessv1alpha1.EnvVar{{Name: "A", Value: "1"}, {Name: "B"}},
			Limits:    serverlessv1alpha1.Limits{MemoryPages: 32, Timeout: "250ms", MaxRequestBytes: 10, MaxResponseBytes: 20},
			Scaling:   serverlessv1alpha1.Scaling{MinInstances: 2, MaxInstances: 4},
		},
	}
	got, err := configFor(fn)
	if err != nil {
		t.Fatal(err)
	}
	want := funchost.Config{
		MemoryLimitPages: 32, Timeout: 250 * time.Millisecond, MaxRequestBytes: 10, MaxResponseBytes: 20,
		MinInstances: 2, MaxInstances: 4, Env: map[string]string{"A": "1", "B": ""}, Isolation: funchost.PerRequest,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("configFor = %+v, want %+v", got, want)
	}
	fn.Spec.ABI = serverlessv1alpha1.ABICommand
	if got, err := configFor(fn); err != nil || got.ABI != funchost.Command {
		t.Errorf("abi Command: configFor = %+v, %v, want ABI Command", got, err)
	}
	fn.Spec.Limits.Timeout = "soon"
	if _, err := configFor(fn); err == nil || !strings.Contains(err.Error(), `limits.timeout "soon"`) {
		t.Errorf("bad timeout: %v", err)
	}
}
