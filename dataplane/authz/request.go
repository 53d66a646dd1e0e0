package authz

import (
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// PolicyContextKey is the ext_authz context extension that names the policy
// of a route. The xDS translator sets it per route.
const PolicyContextKey = "cairn.policy"

// policyID is the policy a check is for, "" when Envoy sent none.
func policyID(req *authv3.CheckRequest) string {
	return req.GetAttributes().GetContextExtensions()[PolicyContextKey]
}

// requestHeaders are the headers of the request being checked. Envoy sends
// lower-case names, either in a map or, with encode_raw_headers, as a list.
// It also serves as an OpenTelemetry carrier for trace context extraction.
type requestHeaders struct {
	req *authv3.AttributeContext_HttpRequest
}

func headersOf(req *authv3.CheckRequest) requestHeaders {
	return requestHeaders{req: req.GetAttributes().GetRequest().GetHttp()}
}

// Get returns the first value of the header name (lower case).
func (h requestHeaders) Get(name string) string {
	if v, ok := h.req.GetHeaders()[name]; ok {
		return v
	}
	for _, hv := range h.req.GetHeaderMap().GetHeaders() {
		if hv.GetKey() == name {
			if raw := hv.GetRawValue(); raw != nil {
				return string(raw)
			}
			return hv.GetValue()
		}
	}
	return ""
}

// Set is a no-op: the carrier is read-only.
func (requestHeaders) Set(string, string) {}

// Keys lists the header names.
func (h requestHeaders) Keys() []string {
	keys := make([]string, 0, len(h.req.GetHeaders())+len(h.req.GetHeaderMap().GetHeaders()))
	for k := range h.req.GetHeaders() {
		keys = append(keys, k)
	}
	for _, hv := range h.req.GetHeaderMap().GetHeaders() {
		keys = append(keys, hv.GetKey())
	}
	return keys
}

// bearerToken extracts the token of an "Authorization: Bearer" header value.
// The scheme is case-insensitive (RFC 7235 section 2.1).
func bearerToken(authorization string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// tenantOf reads the tenant from the policy's tenant header.
func tenantOf(h requestHeaders, header string) string {
	if header == "" {
		return DefaultTenant
	}
	if t := h.Get(header); t != "" {
		return t
	}
	return DefaultTenant
}
