package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
	"github.com/cairn-platform/cairn/controllers"
	"github.com/cairn-platform/cairn/dataplane/scan/scanapi"
	"github.com/cairn-platform/cairn/dataplane/scan/scantest"
	xdsserver "github.com/cairn-platform/cairn/dataplane/xds/server"
)

// startScanner builds and runs the real cmd/scanner with a grype v6
// database holding the planted vulnerabilities, imported from an archive as
// an operator would, and returns its base URL.
func startScanner(t *testing.T) string {
	t.Helper()
	requireEnv(t)
	dir := t.TempDir()
	bin := buildCommand(t, dir, "scanner")
	dbBuild := filepath.Join(dir, "dbbuild")
	scantest.BuildDB(t, dbBuild, scantest.DefaultVulns())
	archive := scantest.PackageDB(t, dbBuild)

	addr := freeAddr(t)
	cmd := exec.Command(bin, "--listen", addr, "--db-dir", filepath.Join(dir, "db"), "--db-import", archive)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := "http://" + addr
	eventually(t, 60*time.Second, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+scanapi.HealthPath, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("scanner health: %s", resp.Status)
		}
		return nil
	})
	return url
}

// TestGitRepoScanGate: a GitRepo with a scanPolicy deploys an image from a
// real registry on loopback, scanned by the real scanner process against a
// database with a planted CVE. The vulnerable image blocks the whole apply
// (condition, Event, status.imageScans); once the tag points at a fixed
// image the same commit applies.
func TestGitRepoScanGate(t *testing.T) {
	requireEnv(t)
	scannerURL := startScanner(t)
	runManager(t, controllers.Config{
		XDS:          xdsserver.New(testLogger(t)),
		ImageScanner: &scanapi.Client{BaseURL: scannerURL, HTTP: &http.Client{Timeout: 2 * time.Minute}},
	})
	registry := scantest.StartRegistry(t)
	vulnerable := scantest.Push(t, registry, "shop/app:1", scantest.BuildImage(t, scantest.ImageOptions{}))
	image := registry + "/shop/app:1"

	ns := newNamespace(t)
	repoGit := newGitFixture(t)
	c1 := repoGit.commit(t, "c1", map[string]string{
		"deploy/app.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec: {containers: [{name: app, image: %q}]}
`, image),
		"deploy/config.yaml": configMap("app-config", "1"),
	})
	createAll(t, ns, fmt.Sprintf(`
apiVersion: gitops.cairn.dev/v1alpha1
kind: GitRepo
metadata: {name: gr}
spec:
  url: %q
  ref: {branch: main}
  path: deploy
  interval: 1h
  scanPolicy: {failOn: High}
  pinImageDigests: true`, repoGit.url))
	key := types.NamespacedName{Namespace: ns, Name: "gr"}

	t.Run("vulnerable image blocks the apply", func(t *testing.T) {
		repo := waitGitRepoReady(t, key, metav1.ConditionFalse, "ScanBlocked", scantest.APKVulnID)
		msg := meta.FindStatusCondition(repo.Status.Conditions, "Ready").Message
		t.Logf("Ready: %s", msg)
		for _, want := range []string{"main@sha1:" + c1, image, "musl " + scantest.VulnerableAPKVersion, "fixed in " + scantest.FixedAPKVersion, "nothing was applied"} {
			if !strings.Contains(msg, want) {
				t.Errorf("Ready message lacks %q", want)
			}
		}
		if len(repo.Status.ImageScans) != 1 {
			t.Fatalf("imageScans = %+v", repo.Status.ImageScans)
		}
		s := repo.Status.ImageScans[0]
		if s.Image != image || s.Digest != vulnerable || s.Findings["High"] != 1 || s.Findings["Medium"] != 1 ||
			len(s.Blocking) != 1 || !strings.HasPrefix(s.Blocking[0], scantest.APKVulnID) || s.DBBuilt == nil {
			t.Errorf("imageScan = %+v, want digest %s, 1 High (blocking) + 1 Medium", s, vulnerable)
		}
		if repo.Status.LastAppliedRevision != "" || len(repo.Status.Inventory) != 0 {
			t.Errorf("applied %q with inventory %v despite the gate", repo.Status.LastAppliedRevision, repo.Status.Inventory)
		}
		if _, ok := getConfigMap(t, ns, "app-config"); ok {
			t.Error("the ConfigMap of a blocked revision was applied")
		}
		var d appsv1.Deployment
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "app"}, &d); err == nil {
			t.Error("the Deployment of a blocked revision was applied")
		}
		requireEvents(t, repo, "ScanBlocked")
	})

	t.Run("ignore list lets the finding through", func(t *testing.T) {
		patch := fmt.Sprintf(`{"spec":{"scanPolicy":{"failOn":"High","ignore":[{"id":%q,"reason":"not reachable in our build"}]}}}`, scantest.APKVulnID)
		patchGitRepo(t, key, patch)
		repo := waitGitRepoReady(t, key, metav1.ConditionTrue, "Applied", "main@sha1:"+c1)
		if got := repo.Status.ImageScans; len(got) != 1 || !slices.Contains(got[0].Ignored, scantest.APKVulnID) || len(got[0].Blocking) != 0 {
			t.Errorf("imageScans = %+v, want the CVE ignored", got)
		}
		patchGitRepo(t, key, `{"spec":{"scanPolicy":{"failOn":"High","ignore":null}}}`)
		waitGitRepoReady(t, key, metav1.ConditionFalse, "ScanBlocked", scantest.APKVulnID)
	})

	t.Run("fixed image under the same tag applies", func(t *testing.T) {
		fixed := scantest.Push(t, registry, "shop/app:1", scantest.BuildImage(t, scantest.ImageOptions{APKVersion: scantest.FixedAPKVersion}))
		poke(t, key)
		repo := waitGitRepoReady(t, key, metav1.ConditionTrue, "Applied", "main@sha1:"+c1)
		s := repo.Status.ImageScans
		if len(s) != 1 || s[0].Digest != fixed || s[0].Findings["High"] != 0 || s[0].Findings["Medium"] != 1 || len(s[0].Blocking) != 0 {
			t.Errorf("imageScans = %+v, want the fixed digest %s with only the Medium finding", s, fixed)
		}
		if _, ok := getConfigMap(t, ns, "app-config"); !ok {
			t.Error("ConfigMap not applied after the fix")
		}
		// pinImageDigests: the Deployment runs exactly the scanned image.
		var d appsv1.Deployment
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "app"}, &d); err != nil {
			t.Fatal(err)
		}
		if got := d.Spec.Template.Spec.Containers[0].Image; got != image+"@"+fixed {
			t.Errorf("Deployment image = %s, want %s@%s", got, image, fixed)
		}
	})

	t.Run("missing image is reported, not applied", func(t *testing.T) {
		c2 := repoGit.commit(t, "c2", map[string]string{"deploy/app.yaml": strings.ReplaceAll(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: other}
spec: {containers: [{name: x, image: %q}]}
`, registry+"/shop/missing:1"), "\t", "")})
		poke(t, key)
		repo := waitGitRepoReady(t, key, metav1.ConditionFalse, "ScanFailed", "shop/missing:1")
		if repo.Status.LastAttemptedRevision != "main@sha1:"+c2 || repo.Status.LastAppliedRevision != "main@sha1:"+c1 {
			t.Errorf("revisions = %s / %s", repo.Status.LastAttemptedRevision, repo.Status.LastAppliedRevision)
		}
	})
}

func patchGitRepo(t *testing.T, key types.NamespacedName, patch string) {
	t.Helper()
	repo := &gitopsv1alpha1.GitRepo{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	if err := env.Client.Patch(context.Background(), repo, rawMergePatch(patch)); err != nil {
		t.Fatal(err)
	}
}

func rawMergePatch(p string) client.Patch { return client.RawPatch(types.MergePatchType, []byte(p)) }
