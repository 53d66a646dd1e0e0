package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
	"github.com/cairn-platform/cairn/controllers"
	xdsserver "github.com/cairn-platform/cairn/dataplane/xds/server"
)

const benchManifests = 1000

// BenchmarkGitRepoSync measures, through the in-process manager (its
// default client limits: 100 QPS, burst 200) against envtest, a GitRepo of
// 1,000 ConfigMaps (one file each, served by git daemon): the first sync
// (fetch, render, dry-run of the whole set, apply) until Ready says all
// objects are applied, and a no-op resync (same commit re-applied to
// correct drift) until status.lastHandledReconcileAt shows the request was
// handled. Each iteration uses a fresh namespace.
func BenchmarkGitRepoSync(b *testing.B) {
	requireEnv(b)
	runManager(b, controllers.Config{XDS: xdsserver.New(testLogger(b))})
	repoGit := newGitFixture(b)
	files := make(map[string]string, benchManifests)
	for i := range benchManifests {
		files[fmt.Sprintf("deploy/cm-%04d.yaml", i)] = configMap(fmt.Sprintf("cm-%04d", i), strings.Repeat("x", 200))
	}
	commit := repoGit.commit(b, "1000 manifests", files)
	want := fmt.Sprintf("main@sha1:%s: %d objects", commit, benchManifests)

	var first, noop []time.Duration
	for b.Loop() {
		ns := newNamespace(b)
		key := types.NamespacedName{Namespace: ns, Name: "bench"}
		start := time.Now()
		repo := &gitopsv1alpha1.GitRepo{}
		repo.Namespace, repo.Name = ns, "bench"
		repo.Spec = gitopsv1alpha1.GitRepoSpec{URL: repoGit.url, Path: "deploy", Interval: "1h", Timeout: "5m", Prune: true}
		if err := env.Client.Create(context.Background(), repo); err != nil {
			b.Fatal(err)
		}
		waitFor(b, 5*time.Minute, func(ctx context.Context) (bool, error) {
			if err := env.Client.Get(ctx, key, repo); err != nil {
				return false, err
			}
			c := meta.FindStatusCondition(repo.Status.Conditions, "Ready")
			if c != nil && c.Reason == "ApplyFailed" {
				return false, fmt.Errorf("apply failed: %s", c.Message)
			}
			return c != nil && c.Status == "True" && strings.Contains(c.Message, want), nil
		})
		first = append(first, time.Since(start))

		value := time.Now().Format(time.RFC3339Nano)
		start = time.Now()
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, gitopsv1alpha1.ReconcileRequestAnnotation, value)
		if err := env.Client.Patch(context.Background(), repo, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
			b.Fatal(err)
		}
		waitFor(b, 5*time.Minute, func(ctx context.Context) (bool, error) {
			if err := env.Client.Get(ctx, key, repo); err != nil {
				return false, err
			}
			return repo.Status.LastHandledReconcileAt == value, nil
		})
		noop = append(noop, time.Since(start))
		if c := meta.FindStatusCondition(repo.Status.Conditions, "Ready"); c == nil || c.Status != "True" {
			b.Fatalf("no-op resync left Ready = %+v", c)
		}
	}
	b.ReportMetric(median(first).Seconds(), "first-sync-s")
	b.ReportMetric(median(noop).Seconds(), "noop-resync-s")
	b.Logf("first sync %v; no-op resync %v", first, noop)
}

// waitFor polls cond every 20 ms until it is true.
func waitFor(b testing.TB, timeout time.Duration, cond func(context.Context) (bool, error)) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		ok, err := cond(ctx)
		if err != nil && ctx.Err() == nil && !strings.Contains(err.Error(), "not found") {
			b.Fatal(err)
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			b.Fatalf("timed out after %v (last error %v)", timeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
