package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
)

const gitBin = "/usr/bin/git"

// gitFixture is a repository served by git daemon on loopback.
type gitFixture struct {
	dir string // working tree of repo.git
	url string
}

func newGitFixture(t testing.TB) *gitFixture {
	t.Helper()
	if _, err := os.Stat(gitBin); err != nil {
		t.Skipf("system git not available at %s: %v", gitBin, err)
	}
	root := t.TempDir()
	f := &gitFixture{dir: filepath.Join(root, "repo.git")}
	f.git(t, root, "init", "-q", "-b", "main", f.dir)
	f.url = serveGit(t, root) + "/repo.git"
	return f
}

// gitEnv isolates the system git from the user's and system's config.
func gitEnv(home string) []string {
	return []string{
		"HOME=" + home, "PATH=" + os.Getenv("PATH"), "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
	}
}

func (f *gitFixture) git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(gitBin, args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (an empty content removes the file) and commits them.
func (f *gitFixture) commit(t testing.TB, msg string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(f.dir, name)
		if content == "" {
			f.git(t, f.dir, "rm", "-q", name)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		f.git(t, f.dir, "add", name)
	}
	f.git(t, f.dir, "commit", "-q", "-m", msg)
	return f.git(t, f.dir, "rev-parse", "HEAD")
}

// serveGit runs git daemon for root on a free loopback port and returns the
// base URL; it retries when another process takes the port first.
func serveGit(t testing.TB, root string) string {
	t.Helper()
	var lastErr error
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		cmd := exec.Command(gitBin, "daemon", "--base-path="+root, "--export-all", "--reuseaddr",
			"--listen=127.0.0.1", "--port="+strconv.Itoa(port), root)
		cmd.Env = gitEnv(t.TempDir())
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting git daemon: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				_ = c.Close()
				t.Cleanup(func() {
					_ = cmd.Process.Kill()
					<-exited
				})
				return "git://" + addr
			}
			lastErr = err
			select {
			case <-exited:
				deadline = time.Time{}
			case <-time.After(20 * time.Millisecond):
			}
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Fatalf("git daemon did not start: %v", lastErr)
	return ""
}

func configMap(name, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata: {value: %q}\n", name, value)
}

// waitGitRepoReady waits until the GitRepo's Ready condition has status and reason
// for its current generation and its message contains msg.
func waitGitRepoReady(t *testing.T, key types.NamespacedName, status metav1.ConditionStatus, reason, msg string) *gitopsv1alpha1.GitRepo {
	t.Helper()
	repo := &gitopsv1alpha1.GitRepo{}
	eventually(t, 30*time.Second, func(ctx context.Context) error {
		if err := env.Client.Get(ctx, key, repo); err != nil {
			return err
		}
		c := meta.FindStatusCondition(repo.Status.Conditions, "Ready")
		if c == nil || c.Status != status || c.Reason != reason || !strings.Contains(c.Message, msg) || c.ObservedGeneration != repo.Generation {
			return fmt.Errorf("Ready = %+v; want %s/%s containing %q", c, status, reason, msg)
		}
		return nil
	})
	return repo
}

// poke asks for a sync now, as "kubectl annotate" would.
func poke(t *testing.T, key types.NamespacedName) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"reconcile.cairn.dev/requestedAt":%q}}}`, time.Now().Format(time.RFC3339Nano))
	repo := &gitopsv1alpha1.GitRepo{}
	repo.Namespace, repo.Name = key.Namespace, key.Name
	if err := env.Client.Patch(context.Background(), repo, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

func inventoryIDs(repo *gitopsv1alpha1.GitRepo) []string {
	ids := make([]string, len(repo.Status.Inventory))
	for i, e := range repo.Status.Inventory {
		ids[i] = e.ID
	}
	return ids
}

func getConfigMap(t *testing.T, ns, name string) (*corev1.ConfigMap, bool) {
	t.Helper()
	var cm corev1.ConfigMap
	err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &cm)
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return &cm, true
}

func TestGitRepoSync(t *testing.T) {
	requireEnv(t)
	startManager(t)
	ns := newNamespace(t)
	repoGit := newGitFixture(t)
	c1 := repoGit.commit(t, "c1", map[string]string{
		"deploy/a.yaml": configMap("a", "1"),
		"deploy/b.yaml": configMap("b", "1"),
		"README.md":     "not a manifest, outside path\n",
	})
	createAll(t, ns, fmt.Sprintf(`
apiVersion: gitops.cairn.dev/v1alpha1
kind: GitRepo
metadata: {name: gr}
spec: {url: %q, ref: {branch: main}, path: deploy, interval: 1m, prune: true}`, repoGit.url))
	key := types.NamespacedName{Namespace: ns, Name: "gr"}

	t.Run("initial sync", func(t *testing.T) {
		repo := waitGitRepoReady(t, key, metav1.ConditionTrue, "Applied", "2 objects, 2 changed")
		if want := "main@sha1:" + c1; repo.Status.LastAppliedRevision != want || repo.Status.LastAttemptedRevision != want {
			t.Errorf("revisions = %q, %q; want %q", repo.Status.LastAppliedRevision, repo.Status.LastAttemptedRevision, want)
		}
		if ids := inventoryIDs(repo); strings.Join(ids, " ") != ns+"_a__ConfigMap "+ns+"_b__ConfigMap" {
			t.Errorf("inventory = %v", ids)
		}
		for _, name := range []string{"a", "b"} {
			if _, ok := getConfigMap(t, ns, name); !ok {
				t.Errorf("ConfigMap %s not applied", name)
			}
		}
	})

	t.Run("new commit is applied", func(t *testing.T) {
		c2 := repoGit.commit(t, "c2", map[string]string{"deploy/a.yaml": configMap("a", "2")})
		poke(t, key)
		waitGitRepoReady(t, key, metav1.ConditionTrue, "Applied", "main@sha1:"+c2+": 2 objects, 1 changed")
		if cm, _ := getConfigMap(t, ns, "a"); cm == nil || cm.Data["value"] != "2" {
			t.Errorf("ConfigMap a = %+v, want value 2", cm)
		}
	})

	t.Run("removed file is pruned", func(t *testing.T) {
		c3 := repoGit.commit(t, "c3", map[string]string{"deploy/b.yaml": ""})
		poke(t, key)
		repo := waitGitRepoReady(t, key, metav1.ConditionTrue, "Applied", "main@sha1:"+c3+": 1 objects, 0 changed, 1 pruned")
		if ids := inventoryIDs(repo); len(ids) != 1 || ids[0] != ns+"_a__ConfigMap" {
			t.Errorf("inventory = %v, want only a", ids)
		}
		if _, ok := getConfigMap(t, ns, "b"); ok {
			t.Error("ConfigMap b was not pruned")
		}
	})

	t.Run("drift is corrected on resync without a new commit", func(t *testing.T) {
		cm, _ := getConfigMap(t, ns, "a")
		cm.Data["value"] = "edited"
		if err := env.Client.Update(context.Background(), cm); err != nil {
			t.Fatal(err)
		}
		poke(t, key)
		eventually(t, 30*time.Second, func(context.Context) error {
			if cm, _ := getConfigMap(t, ns, "a"); cm == nil || cm.Data["value"] != "2" {
				return fmt.Errorf("ConfigMap a = %+v, want value 2 restored from git", cm)
			}
			return nil
		})
		requireEvents(t, &gitopsv1alpha1.GitRepo{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gr"}}, "DriftCorrected")
	})

	t.Run("bad manifest applies nothing", func(t *testing.T) {
		before := &gitopsv1alpha1.GitRepo{}
		if err := env.Client.Get(context.Background(), key, before); err != nil {
			t.Fatal(err)
		}
		c4 := repoGit.commit(t, "c4", map[string]string{
			"deploy/c.yaml":      configMap("c", "1"),
			"deploy/widget.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
		})
		poke(t, key)
		repo := waitGitRepoReady(t, key, metav1.ConditionFalse, "ApplyFailed", "Widget")
		t.Logf("Ready: %s", meta.FindStatusCondition(repo.Status.Conditions, "Ready").Message)
		if !strings.Contains(meta.FindStatusCondition(repo.Status.Conditions, "Ready").Message, "/w") {
			t.Errorf("Ready message does not name the object: %s", meta.FindStatusCondition(repo.Status.Conditions, "Ready").Message)
		}
		if repo.Status.LastAppliedRevision != before.Status.LastAppliedRevision || repo.Status.LastAttemptedRevision != "main@sha1:"+c4 {
			t.Errorf("revisions = %q, %q; want %q applied and c4 attempted", repo.Status.LastAppliedRevision, repo.Status.LastAttemptedRevision, before.Status.LastAppliedRevision)
		}
		if _, ok := getConfigMap(t, ns, "c"); ok {
			t.Error("ConfigMap c of the refused commit was applied")
		}
	})

	t.Run("detect mode reports drift and keeps the edit", func(t *testing.T) {
		c5 := repoGit.commit(t, "c5", map[string]string{"deploy/widget.yaml": ""})
		poke(t, key)
		waitGitRepoReady(t, key, metav1.ConditionTrue, "Applied", "main@sha1:"+c5+": 2 objects")

		cm, _ := getConfigMap(t, ns, "a")
		cm.Data["value"] = "edited"
		if err := env.Client.Update(context.Background(), cm); err != nil {
			t.Fatal(err)
		}
		patch := []byte(`{"spec":{"driftMode":"Detect"}}`)
		repo := &gitopsv1alpha1.GitRepo{}
		repo.Namespace, repo.Name = key.Namespace, key.Name
		if err := env.Client.Patch(context.Background(), repo, client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Fatal(err)
		}
		waitGitRepoReady(t, key, metav1.ConditionFalse, "DriftDetected", "v1/ConfigMap/"+ns+"/a")
		if cm, _ := getConfigMap(t, ns, "a"); cm == nil || cm.Data["value"] != "edited" {
			t.Errorf("ConfigMap a = %+v, want the edit kept in detect mode", cm)
		}
	})

	t.Run("deleting the GitRepo prunes what it applied", func(t *testing.T) {
		// Detect mode promises to change nothing, deletion included.
		patchGitRepo(t, key, `{"spec":{"driftMode":"Correct"}}`)
		waitGitRepoReady(t, key, metav1.ConditionTrue, "Applied", "")
		repo := &gitopsv1alpha1.GitRepo{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gr"}}
		if err := env.Client.Delete(context.Background(), repo); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, func(ctx context.Context) error {
			if err := env.Client.Get(ctx, key, repo); !apierrors.IsNotFound(err) {
				return fmt.Errorf("GitRepo still there (finalizers %v): %w", repo.Finalizers, err)
			}
			if _, ok := getConfigMap(t, ns, "a"); ok {
				return errors.New("ConfigMap a was not pruned")
			}
			return nil
		})
	})
}

// A GitRepo applies as its serviceAccountName, so it can only create what
// that account may; an unreachable repository is reported without
// affecting Accepted.
func TestGitRepoImpersonationAndFetchFailure(t *testing.T) {
	requireEnv(t)
	startManager(t)
	ns := newNamespace(t)
	repoGit := newGitFixture(t)
	c1 := repoGit.commit(t, "c1", map[string]string{"deploy/a.yaml": configMap("a", "1")})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	_ = l.Close()
	createAll(t, ns, fmt.Sprintf(`
apiVersion: v1
kind: ServiceAccount
metadata: {name: deployer}
---
apiVersion: gitops.cairn.dev/v1alpha1
kind: GitRepo
metadata: {name: as-deployer}
spec: {url: %q, ref: {branch: main}, path: deploy, serviceAccountName: deployer}
---
apiVersion: gitops.cairn.dev/v1alpha1
kind: GitRepo
metadata: {name: unreachable}
spec: {url: "git://%s/nothing.git"}`, repoGit.url, closed))

	t.Run("unreachable repository", func(t *testing.T) {
		repo := waitGitRepoReady(t, types.NamespacedName{Namespace: ns, Name: "unreachable"}, metav1.ConditionFalse, "FetchFailed", closed)
		t.Logf("Ready: %s", meta.FindStatusCondition(repo.Status.Conditions, "Ready").Message)
		if !meta.IsStatusConditionTrue(repo.Status.Conditions, "Accepted") {
			t.Errorf("Accepted = %+v, want True", meta.FindStatusCondition(repo.Status.Conditions, "Accepted"))
		}
	})

	key := types.NamespacedName{Namespace: ns, Name: "as-deployer"}
	t.Run("service account without rights", func(t *testing.T) {
		repo := waitGitRepoReady(t, key, metav1.ConditionFalse, "ApplyFailed", "system:serviceaccount:"+ns+":deployer")
		t.Logf("Ready: %s", meta.FindStatusCondition(repo.Status.Conditions, "Ready").Message)
		if _, ok := getConfigMap(t, ns, "a"); ok {
			t.Error("ConfigMap applied without permission")
		}
	})

	t.Run("service account granted rights", func(t *testing.T) {
		createAll(t, ns, `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: configmaps}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list, watch, create, update, patch, delete]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: deployer}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmaps}
subjects: [{kind: ServiceAccount, name: deployer}]`)
		poke(t, key)
		waitGitRepoReady(t, key, metav1.ConditionTrue, "Applied", "main@sha1:"+c1)
		if _, ok := getConfigMap(t, ns, "a"); !ok {
			t.Error("ConfigMap a not applied")
		}
	})

	t.Run("deletion after its service account is gone keeps the objects", func(t *testing.T) {
		ctx := context.Background()
		if err := env.Client.Delete(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "deployer"}}); err != nil {
			t.Fatal(err)
		}
		repo := &gitopsv1alpha1.GitRepo{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "as-deployer"}}
		if err := env.Client.Delete(ctx, repo); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, func(ctx context.Context) error {
			if err := env.Client.Get(ctx, key, repo); !apierrors.IsNotFound(err) {
				return fmt.Errorf("GitRepo still there (finalizers %v): %w", repo.Finalizers, err)
			}
			return nil
		})
		if _, ok := getConfigMap(t, ns, "a"); !ok {
			t.Error("ConfigMap a was deleted without the identity that applied it")
		}
		requireEvents(t, repo, "PruneSkipped")
	})
}
