package gitops

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/gitops/source"
)

func TestIsSSH(t *testing.T) {
	for url, want := range map[string]bool{
		"ssh://git@git.example.com/org/repo.git": true,
		"git@github.com:org/repo.git":            true,
		"https://git.example.com/org/repo.git":   false,
		"http://127.0.0.1:8080/repo.git":         false,
		"git://git.example.com/repo.git":         false,
		"file:///srv/git/repo":                   false,
	} {
		if got := isSSH(url); got != want {
			t.Errorf("isSSH(%q) = %v, want %v", url, got, want)
		}
	}
}

func TestRenderRefusesPathsLeavingTheCheckout(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "deploy"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "deploy", "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"link":     "leaves the repository",
		"../":      "leaves the repository",
		"missing":  "does not exist in the repository",
		"./deploy": "",
		"":         "",
	} {
		objs, err := render(dir, path)
		switch {
		case want == "" && err != nil:
			t.Errorf("render(%q): %v", path, err)
		case want == "" && len(objs) != 1:
			t.Errorf("render(%q) = %d objects, want 1", path, len(objs))
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("render(%q) error = %v, want %q", path, err, want)
		}
	}
}

func TestCheckoutCache(t *testing.T) {
	const commit = "0123456789abcdef0123456789abcdef01234567"
	c := checkoutCache{root: t.TempDir()}
	dir := filepath.Join(c.root, "uid-1", "rev-1")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c.entries = map[types.UID]checkout{"uid-1": {generation: 2, artifact: source.Artifact{Commit: commit, Dir: dir}}}
	if _, ok := c.get("uid-1", 2, commit); !ok {
		t.Error("the cached commit of the same generation is not found")
	}
	if _, ok := c.get("uid-1", 2, strings.Replace(commit, "0", "f", 1)); ok {
		t.Error("another commit hits the cache")
	}
	if _, ok := c.get("uid-1", 3, commit); ok {
		t.Error("a new generation (maybe another ref or path) hits the cache")
	}
	if _, ok := c.get("uid-2", 2, commit); ok {
		t.Error("another GitRepo hits the cache")
	}
	c.drop("uid-1")
	if _, err := os.Stat(filepath.Join(c.root, "uid-1")); !os.IsNotExist(err) {
		t.Errorf("drop left the checkout on disk: %v", err)
	}
	if _, ok := c.get("uid-1", 2, commit); ok {
		t.Error("a dropped checkout is still found")
	}
}

func TestDurationAndImpersonation(t *testing.T) {
	if d := duration("", time.Minute); d != time.Minute {
		t.Errorf("empty duration = %s", d)
	}
	if d := duration("1m30s", time.Minute); d != 90*time.Second {
		t.Errorf("1m30s = %s", d)
	}
	repo := &gitopsv1alpha1.GitRepo{}
	repo.Namespace = "shop"
	if u := impersonatedUser(repo); u != "" {
		t.Errorf("no serviceAccountName impersonates %q", u)
	}
	repo.Spec.ServiceAccountName = "deployer"
	if u := impersonatedUser(repo); u != "system:serviceaccount:shop:deployer" {
		t.Errorf("impersonates %q", u)
	}
}
