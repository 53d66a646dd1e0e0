// Package integration tests Cairn against a real kube-apiserver + etcd: the
// CRDs, their validation, the shipped manifests and the manager binary.
package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

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
func requireEnv(t *testing.T) *testenv.Env {
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
func eventually(t *testing.T, timeout time.Duration, cond func(context.Context) error) {
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
