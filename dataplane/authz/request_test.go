package authz

import (
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// checkRequest is a request as Envoy sends it for a route of policy.
func checkRequest(policy string, headers map[string]string) *authv3.CheckRequest {
	attrs := &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/orders", Headers: headers},
	}}
	if policy != "" {
		attrs.ContextExtensions = map[string]string{PolicyContextKey: policy}
	}
	return &authv3.CheckRequest{Attributes: attrs}
}

func TestPolicyID(t *testing.T) {
	if got := policyID(checkRequest("shop/auth", nil)); got != "shop/auth" {
		t.Errorf("policyID = %q, want shop/auth", got)
	}
	if got := policyID(checkRequest("", nil)); got != "" {
		t.Errorf("policyID without extension = %q, want empty", got)
	}
	if got := policyID(&authv3.CheckRequest{}); got != "" {
		t.Errorf("policyID of an empty request = %q, want empty", got)
	}
}

func TestRequestHeadersFromMap(t *testing.T) {
	h := headersOf(checkRequest("p", map[string]string{"authorization": "Bearer t", "x-tenant": "acme"}))
	if got := h.Get("x-tenant"); got != "acme" {
		t.Errorf("Get(x-tenant) = %q", got)
	}
	if got := h.Get("absent"); got != "" {
		t.Errorf("Get(absent) = %q", got)
	}
	keys := h.Keys()
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"authorization", "x-tenant"}) {
		t.Errorf("Keys = %v", keys)
	}
}

func TestRequestHeadersFromRawHeaderMap(t *testing.T) {
	req := checkRequest("p", nil)
	req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "x-tenant", RawValue: []byte("acme")},
		{Key: "x-tenant", RawValue: []byte("second")},
		{Key: "x-plain", Value: "v"},
	}}
	h := headersOf(req)
	if got := h.Get("x-tenant"); got != "acme" {
		t.Errorf("Get(x-tenant) = %q, want the first raw value", got)
	}
	if got := h.Get("x-plain"); got != "v" {
		t.Errorf("Get(x-plain) = %q, want the string value", got)
	}
	if got := len(h.Keys()); got != 3 {
		t.Errorf("len(Keys) = %d, want 3", got)
	}
}

func TestBearerToken(t *testing.T) {
	for header, want := range map[string]string{
		"Bearer abc.def":     "abc.def",
		"bearer abc":         "abc",
		"BEARER   abc  ":     "abc",
		"  Bearer abc":       "abc",
		"Bearer":             "",
		"Bearer    ":         "",
		"Basic dXNlcjpwYXNz": "",
		"":                   "",
		"Bearerabc":          "",
	} {
		got, ok := bearerToken(header)
		if got != want || ok != (want != "") {
			t.Errorf("bearerToken(%q) = %q, %v; want %q", header, got, ok, want)
		}
	}
}

func TestTenantOf(t *testing.T) {
	h := headersOf(checkRequest("p", map[string]string{"x-tenant": "acme", "x-empty": ""}))
	for header, want := range map[string]string{"x-tenant": "acme", "x-empty": DefaultTenant, "x-absent": DefaultTenant, "": DefaultTenant} {
		if got := tenantOf(h, header); got != want {
			t.Errorf("tenantOf(%q) = %q, want %q", header, got, want)
		}
	}
}
