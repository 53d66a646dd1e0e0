// Package gitops reconciles GitRepos: it validates them and their
// credentials, then fetches the selected revision, renders its manifests and
// applies them (pruning, drift detection and health checks included), with
// the semantics of Flux's kustomize-controller, and reports the result in
// status.
package gitops

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/gitops/apply"
	"github.com/cairn-platform/cairn/internal/conditions"
	"github.com/cairn-platform/cairn/internal/kube"
	"github.com/cairn-platform/cairn/internal/scangate"
	"github.com/cairn-platform/cairn/internal/telemetry"
)

const gitRepoSecretIndex = "gitrepo.spec.secretRefs"

// Condition reasons for GitRepos.
const (
	ReasonAccepted       = "Accepted"
	ReasonInvalid        = "Invalid"
	ReasonSecretNotFound = "SecretNotFound"
	ReasonSuspended      = "Suspended"
	ReasonApplied        = "Applied"
	ReasonInSync         = "InSync"
	ReasonFetchFailed    = "FetchFailed"
	ReasonAuthFailed     = "AuthenticationFailed"
	ReasonApplyFailed    = "ApplyFailed"
	ReasonDriftDetected  = "DriftDetected"
	ReasonHealthy        = "Healthy"
	ReasonHealthFailed   = "HealthCheckFailed"
	ReasonDriftCorrected = "DriftCorrected"
	ReasonPruneFailed    = "PruneFailed"
	// ReasonScanBlocked, ReasonScanFailed and ReasonScanUnavailable are
	// the scan gate's (package scangate).
	ReasonScanBlocked     = scangate.ReasonScanBlocked
	ReasonScanFailed      = scangate.ReasonScanFailed
	ReasonScanUnavailable = scangate.ReasonScanUnavailable
)

// Finalizer lets a deleted GitRepo prune what it applied (when spec.prune is
// set and it is not suspended) before it goes, like Flux's Kustomizations.
const Finalizer = "gitops.cairn.dev/prune"

// GitRepoReconciler validates GitRepos and syncs them to the cluster.
type GitRepoReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// RestConfig is the identity manifests are applied with when a GitRepo
	// names no serviceAccountName; SetupWithManager defaults it to the
	// manager's.
	RestConfig *rest.Config

	// Scanner scans the images of GitRepos with a scanPolicy; nil makes
	// such GitRepos wait (the gate fails closed).
	Scanner scangate.Scanner

	// CheckoutDir holds the last fetched revision of each GitRepo; empty
	// uses a directory under os.TempDir().
	CheckoutDir string

	appliers  applierCache
	checkouts checkoutCache
	// apiReader reads what only deletion needs (ServiceAccounts,
	// Namespaces) without caching every one of them in the cluster.
	apiReader client.Reader
}

// +kubebuilder:rbac:groups=gitops.cairn.dev,resources=gitrepos,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=gitops.cairn.dev,resources=gitrepos/finalizers,verbs=update
// +kubebuilder:rbac:groups=gitops.cairn.dev,resources=gitrepos/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;impersonate
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get

// Reconcile checks one GitRepo, syncs it unless it is invalid or suspended,
// and records Accepted, Ready and Degraded.
func (r *GitRepoReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var repo gitopsv1alpha1.GitRepo
	if err := r.Get(ctx, req.NamespacedName, &repo); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !repo.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, &repo)
	}
	if !controllerutil.ContainsFinalizer(&repo, Finalizer) {
		patch := client.MergeFromWithOptions(repo.DeepCopy(), client.MergeFromWithOptimisticLock{})
		controllerutil.AddFinalizer(&repo, Finalizer)
		if err := r.Patch(ctx, &repo, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
	}
	base := repo.DeepCopy()
	gen := repo.Generation
	conds := &repo.Status.Conditions

	reason, problems, err := r.check(ctx, &repo)
	if err != nil {
		return ctrl.Result{}, err
	}
	var res ctrl.Result
	switch {
	case len(problems) > 0:
		msg := strings.Join(problems, "; ")
		conditions.False(conds, gen, common.ConditionAccepted, reason, msg)
		conditions.False(conds, gen, common.ConditionReady, reason, msg)
		if conditions.IsTrue(base.Status.Conditions, common.ConditionAccepted) || base.Status.ObservedGeneration != gen {
			kube.Warn(r.Recorder, &repo, reason, "Validate", msg)
		}
	case repo.Spec.Suspend:
		conditions.True(conds, gen, common.ConditionAccepted, ReasonAccepted, "the repository spec is valid and its Secrets resolve")
		conditions.False(conds, gen, common.ConditionReady, ReasonSuspended, "reconciliation is suspended; the last applied state stays in place")
	default:
		conditions.True(conds, gen, common.ConditionAccepted, ReasonAccepted, "the repository spec is valid and its Secrets resolve")
		res, err = r.sync(ctx, &repo, base)
	}
	repo.Status.ObservedGeneration = gen
	if v, ok := repo.Annotations[gitopsv1alpha1.ReconcileRequestAnnotation]; ok {
		repo.Status.LastHandledReconcileAt = v
	}
	if perr := kube.PatchStatus(ctx, r.Client, &repo, base); perr != nil {
		return ctrl.Result{}, errors.Join(err, perr)
	}
	return res, err
}

// finalize prunes what the GitRepo applied, then releases the object.
// Nothing is pruned when pruning is off, the GitRepo is suspended or in
// Detect mode (both promise to change nothing), or its service account is
// gone (it could delete nothing; its namespace is probably being deleted).
// Objects that fail to delete keep the finalizer, unless the namespace is
// terminating: a namespace must never hang on its GitRepo.
func (r *GitRepoReconciler) finalize(ctx context.Context, repo *gitopsv1alpha1.GitRepo) error {
	if !controllerutil.ContainsFinalizer(repo, Finalizer) {
		return nil
	}
	if skip, err := r.skipPrune(ctx, repo); err != nil {
		return err
	} else if skip == "" {
		if err := r.pruneAll(ctx, repo); err != nil {
			terminating, nsErr := r.namespaceTerminating(ctx, repo.Namespace)
			if nsErr != nil || !terminating {
				return errors.Join(err, nsErr)
			}
			kube.Warn(r.Recorder, repo, ReasonPruneFailed, "Prune", fmt.Sprintf("%v; the namespace is being deleted, so the GitRepo goes anyway", err))
		}
	} else if len(repo.Status.Inventory) > 0 {
		r.Recorder.Eventf(repo, nil, corev1.EventTypeNormal, "PruneSkipped", "Prune", "deleting the GitRepo: %d object(s) stay in the cluster: %s", len(repo.Status.Inventory), skip)
	}
	r.checkouts.drop(repo.UID)
	patch := client.MergeFromWithOptions(repo.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(repo, Finalizer)
	if err := r.Patch(ctx, repo, patch); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("removing finalizer: %w", err))
	}
	return nil
}

// skipPrune says why deleting the GitRepo must not prune, or "" to prune.
func (r *GitRepoReconciler) skipPrune(ctx context.Context, repo *gitopsv1alpha1.GitRepo) (string, error) {
	switch {
	case !repo.Spec.Prune:
		return "prune is false", nil
	case repo.Spec.Suspend:
		return "the GitRepo is suspended", nil
	case strings.EqualFold(string(repo.Spec.DriftMode), string(gitopsv1alpha1.DriftModeDetect)):
		return "driftMode is Detect", nil
	case len(repo.Status.Inventory) == 0:
		return "nothing was applied", nil
	}
	if sa := repo.Spec.ServiceAccountName; sa != "" {
		found, err := kube.GetIfExists(ctx, r.apiReader, types.NamespacedName{Namespace: repo.Namespace, Name: sa}, &corev1.ServiceAccount{})
		if err != nil {
			return "", fmt.Errorf("reading service account %s: %w", sa, err)
		}
		if !found {
			return fmt.Sprintf("service account %q, which applied them, is gone", sa), nil
		}
	}
	return "", nil
}

// pruneAll deletes the inventory as the identity that applied it.
func (r *GitRepoReconciler) pruneAll(ctx context.Context, repo *gitopsv1alpha1.GitRepo) error {
	inv, err := apply.FromInventory(repo.Status.Inventory)
	if err != nil {
		return fmt.Errorf("status.inventory: %w", err)
	}
	applier, err := r.appliers.get(r.RestConfig, impersonatedUser(repo))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, duration(repo.Spec.Timeout, defaultTimeout))
	defer cancel()
	deleted, kept, err := applier.DeleteAll(ctx, inv)
	if err != nil {
		err = fmt.Errorf("deleting the GitRepo: %d object(s) could not be pruned: %w", len(kept), err)
		kube.Warn(r.Recorder, repo, ReasonPruneFailed, "Prune", err.Error()+"; the GitRepo waits until they can")
		return err
	}
	if len(deleted) > 0 {
		r.Recorder.Eventf(repo, nil, corev1.EventTypeNormal, "Pruned", "Prune", "deleting the GitRepo: pruned %d object(s)", len(deleted))
	}
	return nil
}

func (r *GitRepoReconciler) namespaceTerminating(ctx context.Context, name string) (bool, error) {
	var ns corev1.Namespace
	found, err := kube.GetIfExists(ctx, r.apiReader, types.NamespacedName{Name: name}, &ns)
	if err != nil {
		return false, fmt.Errorf("reading namespace %s: %w", name, err)
	}
	return !found || !ns.DeletionTimestamp.IsZero(), nil
}

func (r *GitRepoReconciler) check(ctx context.Context, repo *gitopsv1alpha1.GitRepo) (string, []string, error) {
	if ref := repo.Spec.Ref; ref != nil && ref.SemVer != nil {
		if _, err := semver.NewConstraint(*ref.SemVer); err != nil {
			return ReasonInvalid, []string{fmt.Sprintf("ref.semver %q is not a semver range: %v", *ref.SemVer, err)}, nil
		}
	}
	if sp := repo.Spec.ScanPolicy; sp != nil && sp.VEX != nil {
		return ReasonInvalid, []string{"scanPolicy.vex is not supported yet; list accepted findings in scanPolicy.ignore"}, nil
	}
	var problems []string
	if ref := repo.Spec.SecretRef; ref != nil {
		p, err := r.checkCredentials(ctx, repo.Namespace, ref.Name, repo.Spec.URL)
		if err != nil {
			return "", nil, err
		}
		if p != "" {
			problems = append(problems, "secretRef: "+p)
		}
	}
	if wh := repo.Spec.Webhook; wh != nil {
		secret, p, err := getSecret(ctx, r.Client, types.NamespacedName{Namespace: repo.Namespace, Name: wh.SecretRef.Name})
		if err != nil {
			return "", nil, err
		}
		if p == "" && len(secret.Data["token"]) == 0 {
			p = fmt.Sprintf("Secret %q has no key \"token\"", wh.SecretRef.Name)
		}
		if p != "" {
			problems = append(problems, "webhook.secretRef: "+p)
		}
	}
	return ReasonSecretNotFound, problems, nil
}

// checkCredentials verifies the Secret carries credentials usable with the
// URL's transport: an ssh key without known_hosts would mean trusting any
// host key, so it is refused.
func (r *GitRepoReconciler) checkCredentials(ctx context.Context, ns, name, url string) (string, error) {
	secret, problem, err := getSecret(ctx, r.Client, types.NamespacedName{Namespace: ns, Name: name})
	if err != nil || problem != "" {
		return problem, err
	}
	has := func(k string) bool { return len(secret.Data[k]) > 0 }
	if isSSH(url) {
		if !has("identity") || !has("known_hosts") {
			return fmt.Sprintf("Secret %q must hold \"identity\" and \"known_hosts\" for an ssh URL", name), nil
		}
		return "", nil
	}
	if has("bearerToken") || (has("username") && has("password")) {
		return "", nil
	}
	return fmt.Sprintf("Secret %q must hold \"username\" and \"password\", or \"bearerToken\", for an http(s) URL", name), nil
}

func isSSH(url string) bool {
	return strings.HasPrefix(url, "ssh://") || !strings.Contains(url, "://")
}

func getSecret(ctx context.Context, c client.Client, key types.NamespacedName) (*corev1.Secret, string, error) {
	var secret corev1.Secret
	found, err := kube.GetIfExists(ctx, c, key, &secret)
	if err != nil || !found {
		return nil, fmt.Sprintf("Secret %q not found", key.Name), err
	}
	return &secret, "", nil
}

// SetupWithManager registers the reconciler; a GitRepo is re-checked when one
// of its Secrets changes, and polled every spec.interval.
func (r *GitRepoReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &gitopsv1alpha1.GitRepo{}, gitRepoSecretIndex, func(o client.Object) []string {
		spec := o.(*gitopsv1alpha1.GitRepo).Spec
		var names []string
		if spec.SecretRef != nil {
			names = append(names, spec.SecretRef.Name)
		}
		if spec.Webhook != nil {
			names = append(names, spec.Webhook.SecretRef.Name)
		}
		return names
	}); err != nil {
		return fmt.Errorf("indexing GitRepos by Secret: %w", err)
	}
	if r.RestConfig == nil {
		r.RestConfig = mgr.GetConfig()
	}
	r.checkouts.root = r.CheckoutDir
	r.apiReader = mgr.GetAPIReader()
	// Status writes must not trigger a sync (each would poll the server);
	// a spec change or any annotation change (kubectl annotate …
	// reconcile.cairn.dev/requestedAt=…) does.
	return ctrl.NewControllerManagedBy(mgr).
		For(&gitopsv1alpha1.GitRepo{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.Secret{}, kube.EnqueueReferrers(mgr.GetClient(), &gitopsv1alpha1.GitRepoList{}, gitRepoSecretIndex)).
		Named("gitrepo").
		Complete(telemetry.TraceReconciler("GitRepo", r))
}
