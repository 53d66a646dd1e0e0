package gateway

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/authz"
	"github.com/cairn-platform/cairn/internal/kube"
	"github.com/cairn-platform/cairn/internal/telemetry"
)

// AuthzSyncReconciler keeps the ext_authz service's introspection policies
// equal to the AuthPolicies, with client credentials read from their
// Secrets. It writes no status (AuthPolicyReconciler does), so it runs on
// every replica: each serves authorization to the proxies that reach it.
type AuthzSyncReconciler struct {
	client.Client
	Authz *authz.Server

	mu       sync.Mutex
	policies map[string]authz.Policy // by "namespace/name"
}

// Reconcile adds, updates or removes one policy.
func (r *AuthzSyncReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	id := req.String()
	var p gatewayv1alpha1.AuthPolicy
	found, err := kube.GetIfExists(ctx, r.Client, req.NamespacedName, &p)
	if err != nil {
		return ctrl.Result{}, err
	}
	var policy *authz.Policy
	if found && p.Spec.OAuth2Introspection != nil {
		policy, err = r.introspectionPolicy(ctx, &p)
		if err != nil {
			return ctrl.Result{}, err
		}
	}
	r.mu.Lock()
	if policy == nil {
		delete(r.policies, id)
	} else {
		r.policies[id] = *policy
	}
	all := maps.Clone(r.policies)
	r.mu.Unlock()
	if err := r.Authz.SetPolicies(all); err != nil {
		// Invalid policies deny their routes; the AuthPolicy's status says why.
		ctrl.LoggerFrom(ctx).Info("some introspection policies are invalid", "error", err.Error())
	}
	return ctrl.Result{}, nil
}

// introspectionPolicy converts an AuthPolicy; a missing Secret yields no
// policy (requests are denied) rather than an error to retry forever.
func (r *AuthzSyncReconciler) introspectionPolicy(ctx context.Context, p *gatewayv1alpha1.AuthPolicy) (*authz.Policy, error) {
	in := p.Spec.OAuth2Introspection
	var secret corev1.Secret
	found, err := kube.GetIfExists(ctx, r.Client, types.NamespacedName{Namespace: p.Namespace, Name: in.ClientSecretRef.Name}, &secret)
	if err != nil || !found {
		return nil, err
	}
	out := &authz.Policy{
		Endpoint:       in.Endpoint,
		ClientID:       string(secret.Data["clientID"]),
		ClientSecret:   string(secret.Data["clientSecret"]),
		RequiredScopes: in.RequiredScopes,
		FailureMode:    authz.FailureMode(p.Spec.FailureMode),
		TenantHeader:   tenantHeader(p),
	}
	if out.CacheTTL, err = parseOptionalDuration(string(in.CacheTTL)); err != nil {
		return nil, fmt.Errorf("oauth2Introspection.cacheTTL: %w", err)
	}
	if out.Timeout, err = parseOptionalDuration(string(in.Timeout)); err != nil {
		return nil, fmt.Errorf("oauth2Introspection.timeout: %w", err)
	}
	if b := p.Spec.Breaker; b != nil {
		out.Breaker = authz.BreakerConfig{FailureThreshold: int(b.FailureThreshold), HalfOpenProbes: int(b.HalfOpenProbes)}
		if out.Breaker.OpenDuration, err = parseOptionalDuration(string(b.OpenDuration)); err != nil {
			return nil, fmt.Errorf("breaker.openDuration: %w", err)
		}
	}
	return out, nil
}

// tenantHeader is where the authorization service reads the tenant: the
// header itself, or the header a JWT provider copies the tenant claim into
// (jwt_authn runs before ext_authz).
func tenantHeader(p *gatewayv1alpha1.AuthPolicy) string {
	tk := p.Spec.TenantKey
	switch {
	case tk == nil:
		return ""
	case tk.Header != nil:
		return *tk.Header
	case tk.Claim != nil && p.Spec.JWT != nil:
		for _, prov := range p.Spec.JWT.Providers {
			for _, c := range prov.ClaimToHeaders {
				if c.Claim == *tk.Claim {
					return c.Header
				}
			}
		}
	}
	return ""
}

func parseOptionalDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// SetupWithManager registers the reconciler on every replica; Secret changes
// re-sync the policies that use them.
func (r *AuthzSyncReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.policies = map[string]authz.Policy{}
	notLeaderOnly := false
	return ctrl.NewControllerManagedBy(mgr).
		Named("authzsync").
		WithOptions(controller.Options{NeedLeaderElection: &notLeaderOnly}).
		For(&gatewayv1alpha1.AuthPolicy{}).
		Watches(&corev1.Secret{}, kube.EnqueueReferrers(mgr.GetClient(), &gatewayv1alpha1.AuthPolicyList{}, authPolicySecretIndex)).
		Complete(telemetry.TraceReconciler("AuthzSync", r))
}
