// Package authz is Cairn's Envoy external authorization service
// (envoy.service.auth.v3.Authorization): it validates OAuth2 bearer tokens
// with RFC 7662 token introspection, on behalf of AuthPolicies.
//
// # Contract with the xDS translator
//
// Envoy's ext_authz filter is configured once per listener, pointing at this
// service over gRPC. Each route guarded by an AuthPolicy sets a per-route
// ext_authz override (ExtAuthzPerRoute.check_settings.context_extensions)
// with
//
//	cairn.policy: <policy ID>
//
// (see [PolicyContextKey]). The policy ID is whatever the controller uses as
// the key in [Server.SetPolicies]; "namespace/name" of the AuthPolicy is the
// natural choice. A check naming no policy, or one the service does not know
// (yet), is denied with 403: an unconfigured route must fail closed.
//
// The service reads request headers from attributes.request.http.headers, or
// from header_map when the filter sets encode_raw_headers. It never asks for
// the request body.
//
// # Answers
//
//   - no "Authorization: Bearer" token: 401 with "WWW-Authenticate: Bearer"
//   - token not active (or expired): 401, error="invalid_token"
//   - a required scope missing: 403, error="insufficient_scope"
//   - token valid: OK; the upstream request gets x-auth-subject,
//     x-auth-client-id, x-auth-username, x-auth-scope and x-cairn-tenant,
//     overwriting anything the client sent under those names
//   - introspection impossible (endpoint failing, breaker open): the policy's
//     failure mode. Deny answers gRPC UNAVAILABLE with HTTP 503; Allow answers
//     OK with x-cairn-auth-degraded: true and strips the x-auth-* headers, so
//     a backend can never mistake a degraded request for an authenticated one.
//
// The service answers every check itself and never returns a gRPC error, so
// Envoy's own failure_mode_allow only applies when the service is unreachable.
//
// # Tenants, breakers and label cardinality
//
// The tenant of a request is the value of the policy's tenant header
// ("default" when absent). Each (policy, tenant) pair has its own circuit
// breaker, so one tenant whose introspection keeps failing cannot push the
// others into the failure mode.
//
// The tenant is only as trustworthy as its header: unless Envoy sets it from
// a validated JWT claim (jwt_authn claim_to_headers, which overwrites what
// the client sent), a client can name any tenant, and so choose whose
// breaker its failures count against.
//
// The number of distinct tenants is therefore in the client's hands. Each
// policy tracks at most 1000 by default ([DefaultMaxTenantsPerPolicy], see
// [WithMaxTenantsPerPolicy]), first come first served for the
// lifetime of the policy version; a request without a bearer token never
// claims a slot. Later tenants, and values that cannot be metric labels,
// share one breaker and appear in metrics as tenant="other". This bounds
// memory and time series alike; mind that the introspection latency
// histogram alone has 12 series per tracked tenant.
//
// # Caching
//
// introspection answers are cached per (policy, SHA-256 of the token), until
// the policy's cache TTL or the token's exp, whichever comes first; negative
// answers for at most 10 s. Concurrent checks of the same token share one
// introspection call. Changing a policy in any way starts a fresh cache and
// fresh breakers for it.
package authz
