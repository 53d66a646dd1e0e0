package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
	"github.com/cairn-platform/cairn/internal/conditions"
	"github.com/cairn-platform/cairn/internal/kube"
	"github.com/cairn-platform/cairn/internal/telemetry"
)

// Field indexes on AuthPolicies, by the name of what they reference.
const (
	authPolicySecretIndex = "authpolicy.spec.oauth2Introspection.clientSecretRef"
	authPolicyTargetIndex = "authpolicy.spec.targetRefs"
)

// Condition reasons for AuthPolicies.
const (
	ReasonSecretNotFound  = "SecretNotFound"
	ReasonInvalidJWKS     = "InvalidJWKS"
	ReasonTargetNotFound  = "TargetNotFound"
	ReasonInvalid         = "Invalid"
	ReasonJWKSUnreachable = "JWKSUnreachable"
	ReasonJWKSReachable   = "JWKSReachable"
)

// AuthPolicyReconciler validates AuthPolicies: JWKS documents, the
// introspection client Secret and the targeted Routes.
type AuthPolicyReconciler struct {
	client.Client
	Recorder events.EventRecorder
	// HTTPClient fetches remote JWKS; nil uses a client with a 5s timeout
	// and the system's root certificates.
	HTTPClient *http.Client
}

// +kubebuilder:rbac:groups=gateway.cairn.dev,resources=authpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.cairn.dev,resources=authpolicies/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch

// Reconcile checks one AuthPolicy and records Accepted and Ready.
func (r *AuthPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var policy gatewayv1alpha1.AuthPolicy
	if err := r.Get(ctx, req.NamespacedName, &policy); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	base := policy.DeepCopy()
	gen := policy.Generation
	conds := &policy.Status.Conditions

	reason, problems, err := r.check(ctx, &policy)
	if err != nil {
		return ctrl.Result{}, err
	}
	if len(problems) > 0 {
		msg := strings.Join(problems, "; ")
		conditions.False(conds, gen, common.ConditionAccepted, reason, msg)
		conditions.False(conds, gen, common.ConditionReady, reason, msg)
		if conditions.IsTrue(base.Status.Conditions, common.ConditionAccepted) || base.Status.ObservedGeneration != gen {
			kube.Warn(r.Recorder, &policy, reason, "Validate", msg)
		}
	} else {
		conditions.True(conds, gen, common.ConditionAccepted, ReasonAccepted, "the policy is valid and its references resolve")
		conditions.True(conds, gen, common.ConditionReady, ReasonAccepted, "the policy applies to the routes that reference it")
	}
	var requeue time.Duration
	if len(problems) == 0 {
		requeue = r.probeJWKS(ctx, &policy)
	} else {
		meta.RemoveStatusCondition(conds, common.ConditionDegraded)
	}
	policy.Status.ObservedGeneration = gen
	return ctrl.Result{RequeueAfter: requeue}, kube.PatchStatus(ctx, r.Client, &policy, base)
}

// jwksRecheck is how often an unreachable JWKS endpoint is tried again.
const jwksRecheck = time.Minute

// probeJWKS fetches every remote JWKS the way the proxies will, so an
// unreachable or malformed key set shows on the policy (Degraded) instead of
// as a wall of 401s. It returns when to check again.
func (r *AuthPolicyReconciler) probeJWKS(ctx context.Context, p *gatewayv1alpha1.AuthPolicy) time.Duration {
	conds := &p.Status.Conditions
	if p.Spec.JWT == nil {
		meta.RemoveStatusCondition(conds, common.ConditionDegraded)
		return 0
	}
	var problems []string
	remote := 0
	for _, prov := range p.Spec.JWT.Providers {
		if prov.JWKS.Remote == nil {
			continue
		}
		remote++
		if err := fetchJWKS(ctx, r.httpClient(), prov.JWKS.Remote.URI); err != nil {
			problems = append(problems, fmt.Sprintf("jwt provider %q: %v", prov.Name, err))
		}
	}
	if len(problems) > 0 {
		msg := strings.Join(problems, "; ") + "; requests needing these providers are rejected until the keys can be fetched"
		if !conditions.IsTrue(*conds, common.ConditionDegraded) {
			kube.Warn(r.Recorder, p, ReasonJWKSUnreachable, "FetchJWKS", msg)
		}
		conditions.True(conds, p.Generation, common.ConditionDegraded, ReasonJWKSUnreachable, msg)
		return jwksRecheck
	}
	if remote == 0 {
		meta.RemoveStatusCondition(conds, common.ConditionDegraded)
		return 0
	}
	conditions.False(conds, p.Generation, common.ConditionDegraded, ReasonJWKSReachable, "every remote JWKS answered with public keys")
	return 0
}

func (r *AuthPolicyReconciler) httpClient() *http.Client {
	if r.HTTPClient != nil {
		return r.HTTPClient
	}
	return &http.Client{Timeout: 5 * time.Second}
}

// fetchJWKS GETs a key set and checks it holds public keys only.
func fetchJWKS(ctx context.Context, c *http.Client, uri string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return fmt.Errorf("building request for %s: %w", uri, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", uri, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching %s: HTTP %d", uri, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading %s: %w", uri, err)
	}
	if err := checkPublicJWKS(string(body)); err != nil {
		return fmt.Errorf("%s: %w", uri, err)
	}
	return nil
}

func (r *AuthPolicyReconciler) check(ctx context.Context, p *gatewayv1alpha1.AuthPolicy) (string, []string, error) {
	if jwt := p.Spec.JWT; jwt != nil {
		var problems []string
		for _, prov := range jwt.Providers {
			if prov.JWKS.Inline != nil {
				if err := checkPublicJWKS(*prov.JWKS.Inline); err != nil {
					problems = append(problems, fmt.Sprintf("jwt provider %q: %v", prov.Name, err))
				}
			}
		}
		if len(problems) > 0 {
			return ReasonInvalidJWKS, problems, nil
		}
	}
	if tk := p.Spec.TenantKey; tk != nil && tk.Claim != nil && tenantHeader(p) == "" {
		return ReasonInvalid, []string{fmt.Sprintf("tenantKey.claim %q is not copied into a request header by any jwt provider (add it to claimToHeaders), so the tenant could not be read", *tk.Claim)}, nil
	}
	if in := p.Spec.OAuth2Introspection; in != nil {
		problem, err := checkSecretKeys(ctx, r.Client, types.NamespacedName{Namespace: p.Namespace, Name: in.ClientSecretRef.Name}, "clientID", "clientSecret")
		if err != nil {
			return "", nil, err
		}
		if problem != "" {
			return ReasonSecretNotFound, []string{"oauth2Introspection.clientSecretRef: " + problem}, nil
		}
	}
	var problems []string
	for _, t := range p.Spec.TargetRefs {
		found, err := kube.GetIfExists(ctx, r.Client, types.NamespacedName{Namespace: p.Namespace, Name: t.Name}, &gatewayv1alpha1.Route{})
		if err != nil {
			return "", nil, err
		}
		if !found {
			problems = append(problems, fmt.Sprintf("targetRefs: Route %q not found", t.Name))
		}
	}
	return ReasonTargetNotFound, problems, nil
}

// checkPublicJWKS accepts a JWKS with at least one key and no private key
// material: a policy is readable by anyone who can read Routes, and a key
// server leaking private keys must not be trusted.
func checkPublicJWKS(doc string) error {
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(doc), &jwks); err != nil {
		return fmt.Errorf("the JWKS is not valid JSON: %w", err)
	}
	if len(jwks.Keys) == 0 {
		return fmt.Errorf("the JWKS has no keys")
	}
	for i, k := range jwks.Keys {
		if _, ok := k["kty"].(string); !ok {
			return fmt.Errorf("JWKS key %d has no \"kty\"", i)
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				return fmt.Errorf("JWKS key %d contains private or symmetric key material (%q): publish public keys only", i, private)
			}
		}
	}
	return nil
}

// checkSecretKeys returns a problem when the Secret is missing or lacks a key.
func checkSecretKeys(ctx context.Context, c client.Client, key types.NamespacedName, keys ...string) (string, error) {
	var secret corev1.Secret
	found, err := kube.GetIfExists(ctx, c, key, &secret)
	if err != nil || !found {
		return fmt.Sprintf("Secret %q not found", key.Name), err
	}
	var missing []string
	for _, k := range keys {
		if len(secret.Data[k]) == 0 {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("Secret %q lacks key(s) %s", key.Name, strings.Join(missing, ", ")), nil
	}
	return "", nil
}

// SetupWithManager registers the reconciler; policies are re-checked when
// their Secret or a targeted Route changes.
func (r *AuthPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &gatewayv1alpha1.AuthPolicy{}, authPolicySecretIndex, func(o client.Object) []string {
		if in := o.(*gatewayv1alpha1.AuthPolicy).Spec.OAuth2Introspection; in != nil {
			return []string{in.ClientSecretRef.Name}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing AuthPolicies by Secret: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &gatewayv1alpha1.AuthPolicy{}, authPolicyTargetIndex, func(o client.Object) []string {
		var names []string
		for _, t := range o.(*gatewayv1alpha1.AuthPolicy).Spec.TargetRefs {
			names = append(names, t.Name)
		}
		return names
	}); err != nil {
		return fmt.Errorf("indexing AuthPolicies by target: %w", err)
	}
	c := mgr.GetClient()
	list := &gatewayv1alpha1.AuthPolicyList{}
	return ctrl.NewControllerManagedBy(mgr).
		For(&gatewayv1alpha1.AuthPolicy{}).
		Watches(&corev1.Secret{}, kube.EnqueueReferrers(c, list, authPolicySecretIndex)).
		Watches(&gatewayv1alpha1.Route{}, kube.EnqueueReferrers(c, list, authPolicyTargetIndex)).
		Named("authpolicy").
		Complete(telemetry.TraceReconciler("AuthPolicy", r))
}
