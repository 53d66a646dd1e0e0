package gitops

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
	"github.com/cairn-platform/cairn/internal/conditions"
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

func TestUpToDate(t *testing.T) {
	const commit = "0123456789abcdef0123456789abcdef01234567"
	repo := &gitopsv1alpha1.GitRepo{}
	repo.Generation = 2
	repo.Status.ObservedGeneration = 2
	repo.Status.LastAppliedRevision = "main@sha1:" + commit
	conditions.True(&repo.Status.Conditions, 2, common.ConditionReady, ReasonApplied, "")
	if !upToDate(repo, commit) {
		t.Error("applied commit of the current generation should be up to date")
	}
	if upToDate(repo, strings.Replace(commit, "0", "f", 1)) {
		t.Error("a new commit is not up to date")
	}
	repo.Generation = 3
	if upToDate(repo, commit) {
		t.Error("a new generation is not up to date")
	}
	repo.Generation = 2
	conditions.False(&repo.Status.Conditions, 2, common.ConditionReady, ReasonApplyFailed, "")
	if upToDate(repo, commit) {
		t.Error("a failed sync is not up to date")
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
