// Package testenv starts a real kube-apiserver + etcd (controller-runtime's
// envtest) with Cairn's CRDs installed, for integration tests.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/cairn-platform/cairn/api/scheme"
)

// ErrNoAssets means KUBEBUILDER_ASSETS is unset: the API server binaries have
// not been built (run `make envtest` or `make test`).
var ErrNoAssets = errors.New("KUBEBUILDER_ASSETS is not set: build the API server with `make envtest` (or run `make test`)")

// Env is a running control plane.
type Env struct {
	env    *envtest.Environment
	Config *rest.Config
	Client client.Client
	// Root is the repository root.
	Root string
}

// Start launches etcd and kube-apiserver and installs the CRDs from
// config/crd/bases.
func Start() (*Env, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, ErrNoAssets
	}
	root := RepoRoot()
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("creating client: %w", err)
	}
	return &Env{env: env, Config: cfg, Client: c, Root: root}, nil
}

// Stop shuts the control plane down.
func (e *Env) Stop() error { return e.env.Stop() }

// Kubeconfig writes a kubeconfig for an admin user to a file in dir and
// returns its path, for processes started by tests.
func (e *Env) Kubeconfig(dir string) (string, error) {
	user, err := e.env.AddUser(envtest.User{Name: "cairn-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("adding envtest user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("rendering kubeconfig: %w", err)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("writing kubeconfig: %w", err)
	}
	return path, nil
}

// RepoRoot is the repository root, found from this source file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
