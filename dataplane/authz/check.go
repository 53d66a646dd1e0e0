package authz

import (
	"context"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/otel/codes"
)

// outcome is the answer to a check and how to account for it.
type outcome struct {
	resp           *authv3.CheckResponse
	policy, tenant string // metric labels
	result         string
	err            error // why the endpoint could not be asked
}

// Check implements envoy.service.auth.v3.Authorization. It always answers
// with a CheckResponse, never a gRPC error: see the package documentation.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	h := headersOf(req)
	ctx, span := startCheckSpan(ctx, s.tracer, h)
	defer span.End()

	o := s.check(ctx, req, h)

	s.metrics.checks.WithLabelValues(o.policy, o.tenant, o.result).Inc()
	span.SetAttributes(attrPolicy.String(o.policy), attrTenant.String(o.tenant), attrResult.String(o.result))
	if o.err != nil {
		span.RecordError(o.err)
		span.SetStatus(codes.Error, "introspection unavailable")
	}
	return o.resp, nil
}

func (s *Server) check(ctx context.Context, req *authv3.CheckRequest, h requestHeaders) outcome {
	id := policyID(req)
	st := s.snapshot()[id]
	if st == nil {
		s.log.V(1).Info("denying a check for an unknown policy", "policy", id)
		return outcome{resp: unknownPolicy(id), policy: unknownLabel, tenant: unknownLabel, result: resultDenied}
	}

	tenant := tenantOf(h, st.policy.TenantHeader)
	token, ok := bearerToken(h.Get("authorization"))
	if !ok {
		// Without so much as a token, a request does not get to claim one
		// of the policy's tenant slots.
		return outcome{resp: missingToken(), policy: id, tenant: st.label(tenant), result: resultUnauthenticated}
	}
	slot := st.slot(tenant)
	o := outcome{policy: id, tenant: slot.label}

	in, err := s.lookup(ctx, st, slot, token)
	if err != nil {
		o.err = err
		if st.policy.FailureMode == FailureModeAllow {
			o.resp, o.result = degraded(tenant), resultFailureAllowed
		} else {
			o.resp, o.result = unavailable(), resultFailureDenied
		}
		return o
	}

	switch d := decide(in, st.policy.RequiredScopes, s.now()); d.verdict {
	case verdictAllow:
		o.resp, o.result = allowed(in, tenant), resultAllowed
	case verdictInsufficientScope:
		o.resp, o.result = insufficientScope(d.missing), resultDenied
	default:
		o.resp, o.result = invalidToken(), resultUnauthenticated
	}
	return o
}
