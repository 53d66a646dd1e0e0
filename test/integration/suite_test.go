// Package integration tests Cairn against a real kube-apiserver + etcd: the
// CRDs, their validation, the shipped manifests and the manager binary.
package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cairn-platform/cairn/controllers"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/cairn-platform/cairn/internal/testenv"
)

var (
	env      *testenv.Env
	startErr error
)

func TestMain(m *testing.M) {
	env, startErr = testenv.Start()
	code := m.Run()
	removeNetns()
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}
	os.Exit(code)
}

// requireEnv skips when the API server binaries are missing and fails when
// they are there but the control plane did not start.
func requireEnv(t testing.TB) *testenv.Env {
	t.Helper()
	if errors.Is(startErr, testenv.ErrNoAssets) {
		t.Skip(startErr.Error())
	}
	if startErr != nil {
		t.Fatalf("control plane did not start: %v", startErr)
	}
	return env
}

// eventually polls cond every 100ms until it returns nil or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last error
	for {
		if last = cond(ctx); last == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("condition not met within %s: %v", timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// runManager runs the Cairn controllers in-process against the test API
// server until the test ends or stop is called. Metrics and probes are off;
// controller names may repeat, since every test starts its own manager.
func runManager(tb testing.TB, cfg controllers.Config) (stop func()) {
	tb.Helper()
	skip := true
	restCfg := rest.CopyConfig(env.Config)
	restCfg.QPS, restCfg.Burst = 100, 200 // cmd/manager's --kube-api-qps and --kube-api-burst defaults
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 controllers.NewScheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             ctrlconfig.Controller{SkipNameValidation: &skip},
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := controllers.SetupAll(mgr, cfg); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("manager: %v", err)
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

// testLogger logs through tb; benchmarks log nothing (go test truncates
// their output, and logging thousands of devices costs time).
func testLogger(tb testing.TB) logr.Logger {
	if _, ok := tb.(*testing.B); ok {
		return logr.Discard()
	}
	return testr.NewWithInterface(tb, testr.Options{})
}

// buildCommand builds cmd/<name> of this module into dir and returns the
// binary's path (go's build cache makes repeated builds cheap).
func buildCommand(tb testing.TB, dir, name string) string {
	tb.Helper()
	bin := filepath.Join(dir, name)
	build := exec.Command("go", "build", "-o", bin, "github.com/cairn-platform/cairn/cmd/"+name)
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("building %s: %v\n%s", name, err, out)
	}
	return bin
}
