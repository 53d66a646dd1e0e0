package gitops

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/gitops/apply"
	"github.com/cairn-platform/cairn/dataplane/gitops/source"
	"github.com/cairn-platform/cairn/internal/conditions"
	"github.com/cairn-platform/cairn/internal/kube"
	"github.com/cairn-platform/cairn/internal/scangate"
)

const (
	// FieldManager owns the fields GitRepos apply.
	FieldManager = "cairn-gitops"

	defaultInterval = 5 * time.Minute
	defaultTimeout  = 60 * time.Second
	// retryInterval is how soon a failed or unhealthy sync is retried (at
	// most spec.interval).
	retryInterval = 30 * time.Second
	// maxListed objects are named in condition messages; the rest are counted.
	maxListed = 5
)

// sync brings the cluster to the revision repo selects and records the
// outcome in repo's status; base is the status as read. Failures to reach git
// or to apply are reported in conditions, not returned: only errors talking
// to the API server are.
func (r *GitRepoReconciler) sync(ctx context.Context, repo, base *gitopsv1alpha1.GitRepo) (ctrl.Result, error) {
	interval := duration(repo.Spec.Interval, defaultInterval)
	retry := ctrl.Result{RequeueAfter: min(retryInterval, interval)}
	req, err := r.request(ctx, repo)
	if err != nil {
		return ctrl.Result{}, err
	}
	applier, err := r.appliers.get(r.RestConfig, impersonatedUser(repo))
	if err != nil {
		return ctrl.Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, duration(repo.Spec.Timeout, defaultTimeout))
	defer cancel()

	commit, err := source.LatestCommit(ctx, req)
	if err != nil {
		r.fetchFailed(repo, base, err)
		return retry, nil
	}
	// The same commit is re-applied from the cached checkout on every
	// resync: that is what corrects (or, in detect mode, reports) drift
	// when git has not changed.
	art, ok := r.checkouts.get(repo.UID, repo.Generation, commit)
	if !ok {
		if art, err = r.checkouts.fetch(ctx, repo.UID, repo.Generation, req); err != nil {
			r.fetchFailed(repo, base, err)
			return retry, nil
		}
	}
	repo.Status.LastAttemptedRevision = art.Revision

	objs, err := render(art.Dir, repo.Spec.Path)
	if err != nil {
		r.applyFailed(repo, base, art.Revision, err)
		return retry, nil
	}
	if sp := repo.Spec.ScanPolicy; sp != nil {
		gate, err := r.scanGate(ctx, sp, objs)
		repo.Status.ImageScans = gate.scans
		// Only a scanner outage is worth retrying soon: a blocked or
		// unscannable revision waits for a push, an image fix or a
		// database update, found at the next interval (or webhook).
		if err != nil {
			reason := scangate.Reason(err)
			r.failed(repo, base, reason, "Scan", fmt.Sprintf("revision %s: %v", art.Revision, err))
			if reason == ReasonScanUnavailable {
				return retry, nil
			}
			return ctrl.Result{RequeueAfter: interval}, nil
		}
		if len(gate.blocked) > 0 {
			r.failed(repo, base, ReasonScanBlocked, "Scan", fmt.Sprintf("revision %s: blocked by scanPolicy, nothing was applied: %s", art.Revision, strings.Join(gate.blocked, "; ")))
			return ctrl.Result{RequeueAfter: interval}, nil
		}
		if repo.Spec.PinImageDigests {
			pinDigests(objs, gate.digests)
		}
	} else {
		repo.Status.ImageScans = nil
	}

	result, err := r.apply(ctx, repo, applier, objs)
	if err != nil {
		r.applyFailed(repo, base, art.Revision, err)
		return retry, nil
	}
	if len(result.Drifted) > 0 {
		r.driftDetected(repo, base, art.Revision, result.Drifted)
		return retry, nil
	}
	r.applied(repo, base, art.Revision, result)
	return r.checkHealth(ctx, repo, base, applier, interval, retry)
}

// request builds the fetch request, with the credentials of secretRef
// (check has verified it exists and holds what the URL needs).
func (r *GitRepoReconciler) request(ctx context.Context, repo *gitopsv1alpha1.GitRepo) (source.Request, error) {
	req := source.Request{URL: repo.Spec.URL}
	if ref := repo.Spec.Ref; ref != nil {
		req.Ref = source.Ref{Branch: deref(ref.Branch), Tag: deref(ref.Tag), SemVer: deref(ref.SemVer), Commit: deref(ref.Commit)}
	}
	if repo.Spec.SecretRef == nil {
		return req, nil
	}
	var secret corev1.Secret
	key := types.NamespacedName{Namespace: repo.Namespace, Name: repo.Spec.SecretRef.Name}
	if err := r.Get(ctx, key, &secret); err != nil {
		return req, fmt.Errorf("reading Secret %s: %w", key, err)
	}
	req.Auth = source.Auth{
		Username:    string(secret.Data["username"]),
		Password:    string(secret.Data["password"]),
		Token:       string(secret.Data["bearerToken"]),
		SSHIdentity: secret.Data["identity"],
		KnownHosts:  secret.Data["known_hosts"],
	}
	return req, nil
}

// apply applies the rendered objects. Inventory of a
// failed apply is kept in status when the applier reports some, so what may
// have been created stays tracked for pruning.
func (r *GitRepoReconciler) apply(ctx context.Context, repo *gitopsv1alpha1.GitRepo, applier *apply.Applier, objs []*unstructured.Unstructured) (apply.Result, error) {
	previous, err := apply.FromInventory(repo.Status.Inventory)
	if err != nil {
		return apply.Result{}, fmt.Errorf("status.inventory: %w", err)
	}
	ns := repo.Spec.TargetNamespace
	if ns == "" {
		ns = repo.Namespace
	}
	result, err := applier.Apply(ctx, objs, previous, apply.Options{
		FieldManager:     FieldManager,
		DefaultNamespace: ns,
		Prune:            repo.Spec.Prune,
		DriftMode:        strings.ToLower(string(repo.Spec.DriftMode)),
		// Like Flux: git is the source of truth, also for fields another
		// manager took over.
		Force: true,
	})
	if err != nil && len(result.Inventory) > 0 {
		repo.Status.Inventory = apply.ToInventory(result.Inventory)
	}
	return result, err
}

// render reads path inside the checkout dir, refusing a path that leaves it
// (also through a symlink committed to the repository).
func render(dir, path string) ([]*unstructured.Unstructured, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("resolving checkout: %w", err)
	}
	target, err := filepath.EvalSymlinks(filepath.Join(root, path))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("path %q does not exist in the repository", path)
		}
		return nil, fmt.Errorf("path %q: %w", path, err)
	}
	if rel, err := filepath.Rel(root, target); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, fmt.Errorf("path %q leaves the repository", path)
	}
	objs, err := apply.Render(target)
	if err != nil {
		// Render names files by their absolute path; the temp dir means
		// nothing to the reader.
		return nil, errors.New(strings.ReplaceAll(err.Error(), root+string(filepath.Separator), ""))
	}
	return objs, nil
}

func (r *GitRepoReconciler) fetchFailed(repo, base *gitopsv1alpha1.GitRepo, err error) {
	reason := ReasonFetchFailed
	if errors.Is(err, source.ErrAuthentication) || errors.Is(err, source.ErrHostKey) {
		reason = ReasonAuthFailed
	}
	// Source errors are written for people, with URLs and secrets redacted;
	// most already name the URL.
	msg := err.Error()
	if url := source.SafeURL(repo.Spec.URL); !strings.Contains(msg, url) {
		msg = fmt.Sprintf("fetching %s: %s", url, msg)
	}
	r.failed(repo, base, reason, "Fetch", msg)
}

func (r *GitRepoReconciler) applyFailed(repo, base *gitopsv1alpha1.GitRepo, revision string, err error) {
	var msg string
	var verr *apply.ValidationError
	if errors.As(err, &verr) {
		failures := make([]string, len(verr.Failures))
		for i, f := range verr.Failures {
			failures[i] = f.Error()
		}
		msg = fmt.Sprintf("revision %s: %d object(s) refused, nothing was applied: %s", revision, len(failures), strings.Join(failures, "; "))
	} else {
		msg = fmt.Sprintf("revision %s: %v", revision, err)
	}
	r.failed(repo, base, ReasonApplyFailed, "Apply", msg)
}

func (r *GitRepoReconciler) driftDetected(repo, base *gitopsv1alpha1.GitRepo, revision string, drifted []apply.Object) {
	msg := fmt.Sprintf("revision %s: %d object(s) differ from git (driftMode Detect, not corrected): %s", revision, len(drifted), list(drifted))
	r.failed(repo, base, ReasonDriftDetected, "DetectDrift", msg)
}

// failed records Ready=False and warns, once per reason and revision rather
// than on every poll.
func (r *GitRepoReconciler) failed(repo, base *gitopsv1alpha1.GitRepo, reason, action, msg string) {
	conditions.False(&repo.Status.Conditions, repo.Generation, common.ConditionReady, reason, msg)
	if readyReason(base) != reason || base.Status.LastAttemptedRevision != repo.Status.LastAttemptedRevision {
		kube.Warn(r.Recorder, repo, reason, action, msg)
	}
}

func (r *GitRepoReconciler) applied(repo, base *gitopsv1alpha1.GitRepo, revision string, res apply.Result) {
	repo.Status.LastAppliedRevision = revision
	repo.Status.Inventory = apply.ToInventory(res.Inventory)
	sameRevision := base.Status.LastAppliedRevision == revision && base.Status.ObservedGeneration == repo.Generation
	readyBefore := conditions.IsTrue(base.Status.Conditions, common.ConditionReady)
	if sameRevision && readyBefore && len(res.Applied) == 0 && len(res.Pruned) == 0 {
		return // a no-op resync: keep the message of the apply that did the work
	}
	reason := ReasonApplied
	msg := fmt.Sprintf("applied revision %s: %d objects, %d changed, %d pruned", revision, len(res.Inventory), len(res.Applied), len(res.Pruned))
	if strings.EqualFold(string(repo.Spec.DriftMode), string(gitopsv1alpha1.DriftModeDetect)) {
		reason = ReasonInSync
		msg = fmt.Sprintf("revision %s matches the cluster: %d objects (driftMode Detect)", revision, len(res.Unchanged))
	}
	conditions.True(&repo.Status.Conditions, repo.Generation, common.ConditionReady, reason, msg)
	switch {
	case !sameRevision:
		r.Recorder.Eventf(repo, nil, corev1.EventTypeNormal, reason, "Apply", "%s", msg)
	case len(res.Applied) > 0 && readyBefore:
		// Git did not change, so these objects were changed in the cluster.
		r.Recorder.Eventf(repo, nil, corev1.EventTypeNormal, ReasonDriftCorrected, "Apply",
			"revision %s: corrected %d object(s) changed in the cluster: %s", revision, len(res.Applied), list(res.Applied))
	}
}

// checkHealth records Degraded from the inventory's rollout state; while
// something is unhealthy the GitRepo is looked at again sooner.
func (r *GitRepoReconciler) checkHealth(ctx context.Context, repo, base *gitopsv1alpha1.GitRepo, applier *apply.Applier, interval time.Duration, retry ctrl.Result) (ctrl.Result, error) {
	inv, err := apply.FromInventory(repo.Status.Inventory)
	if err != nil {
		return retry, fmt.Errorf("status.inventory: %w", err)
	}
	problems, err := applier.Health(ctx, inv)
	if err != nil {
		log.FromContext(ctx).Info("health check failed", "error", err.Error())
		conditions.Unknown(&repo.Status.Conditions, repo.Generation, common.ConditionDegraded, ReasonHealthFailed, err.Error())
		return retry, nil
	}
	if len(problems) == 0 {
		conditions.False(&repo.Status.Conditions, repo.Generation, common.ConditionDegraded, ReasonHealthy, fmt.Sprintf("all %d objects are healthy", len(inv)))
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	texts := make([]string, 0, maxListed)
	for _, p := range problems[:min(len(problems), maxListed)] {
		texts = append(texts, p.String())
	}
	msg := fmt.Sprintf("%d of %d objects unhealthy: %s", len(problems), len(inv), strings.Join(texts, "; "))
	if len(problems) > maxListed {
		msg += fmt.Sprintf("; and %d more", len(problems)-maxListed)
	}
	conditions.True(&repo.Status.Conditions, repo.Generation, common.ConditionDegraded, ReasonHealthFailed, msg)
	if !conditions.IsTrue(base.Status.Conditions, common.ConditionDegraded) {
		kube.Warn(r.Recorder, repo, ReasonHealthFailed, "CheckHealth", msg)
	}
	return retry, nil
}

func readyReason(repo *gitopsv1alpha1.GitRepo) string {
	for _, c := range repo.Status.Conditions {
		if c.Type == common.ConditionReady {
			return c.Reason
		}
	}
	return ""
}

func list(objs []apply.Object) string {
	names := make([]string, 0, maxListed)
	for _, o := range objs[:min(len(objs), maxListed)] {
		names = append(names, o.String())
	}
	s := strings.Join(names, ", ")
	if len(objs) > maxListed {
		s += fmt.Sprintf(" and %d more", len(objs)-maxListed)
	}
	return s
}

// duration parses d, falling back to def for empty or invalid values (the
// CRD validates them; an old object may predate that).
func duration(d common.Duration, def time.Duration) time.Duration {
	v, err := time.ParseDuration(string(d))
	if err != nil || v <= 0 {
		return def
	}
	return v
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// impersonatedUser is the user manifests are applied as: the GitRepo's
// service account, or "" for the manager's own identity.
func impersonatedUser(repo *gitopsv1alpha1.GitRepo) string {
	if repo.Spec.ServiceAccountName == "" {
		return ""
	}
	return "system:serviceaccount:" + repo.Namespace + ":" + repo.Spec.ServiceAccountName
}

// applierCache keeps one Applier per identity: each holds a discovery-backed
// RESTMapper, too expensive to build on every reconcile.
type applierCache struct {
	mu       sync.Mutex
	appliers map[string]*apply.Applier
}

func (c *applierCache) get(cfg *rest.Config, user string) (*apply.Applier, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.appliers[user]; ok {
		return a, nil
	}
	if cfg == nil {
		return nil, errors.New("no rest config to apply with")
	}
	if user != "" {
		cfg = rest.CopyConfig(cfg)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	}
	a, err := apply.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating applier for %q: %w", user, err)
	}
	if c.appliers == nil {
		c.appliers = map[string]*apply.Applier{}
	}
	c.appliers[user] = a
	return a, nil
}
