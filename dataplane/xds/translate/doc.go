// Package translate turns Cairn Routes and AuthPolicies, with the Services,
// EndpointSlices, Functions and descriptor ConfigMaps they reference, into the
// Envoy v3 resources of one gateway. It is pure: no client, no clock, and the
// same input always yields byte-identical output (golden-tested).
//
// Each Route is translated on its own into a fragment and validated (Envoy's
// proto rules, regex syntax, weights, references). A Route that fails is left
// out with an error naming the problem; the others are assembled. One bad
// Route never removes a healthy one.
//
// Two flavours of the same routing table are produced:
//   - Envoy: one socket listener with the HTTP connection manager (RDS), the
//     filters the routes need (jwt_authn, ext_authz, local_ratelimit,
//     grpc_json_transcoder, cors) and the router.
//   - gRPC: one API listener per hostname (plus one named after the gateway
//     that serves every hostname) with only the router filter, the shape
//     grpc-go's xDS client (`xds:///hostname`) consumes. Per-route features a
//     gRPC client cannot enforce (rate limits, JWT) are sent as required
//     per-filter configs so the client rejects them (NACK) instead of silently
//     serving unprotected traffic; browser-only features (CORS, JSON
//     transcoding) are sent as optional.
package translate
