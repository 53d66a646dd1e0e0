package authz

import (
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
)

// upstreamHeaders returns the headers an OK response sets, failing the test
// if one of them would not overwrite a client's value.
func upstreamHeaders(t *testing.T, resp *authv3.CheckResponse) map[string]string {
	t.Helper()
	ok := resp.GetOkResponse()
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK || ok == nil {
		t.Fatalf("response %v is not OK", resp)
	}
	headers := map[string]string{}
	for _, h := range ok.GetHeaders() {
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("header %s does not overwrite", h.GetHeader().GetKey())
		}
		headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return headers
}

// deniedWith checks a denied response and returns its headers.
func deniedWith(t *testing.T, resp *authv3.CheckResponse, code codes.Code, status typev3.StatusCode) map[string]string {
	t.Helper()
	d := resp.GetDeniedResponse()
	if got := codes.Code(resp.GetStatus().GetCode()); got != code || d.GetStatus().GetCode() != status {
		t.Fatalf("response is %v / HTTP %v, want %v / HTTP %v (body %q)", got, d.GetStatus().GetCode(), code, status, d.GetBody())
	}
	headers := map[string]string{}
	for _, h := range d.GetHeaders() {
		headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return headers
}

func TestAllowedSetsIdentityAndRemovesWhatItDoesNotSet(t *testing.T) {
	resp := allowed(introspection{Active: true, Subject: "ada", Scopes: []string{"a", "b"}}, "acme")
	headers := upstreamHeaders(t, resp)
	want := map[string]string{HeaderSubject: "ada", HeaderScope: "a b", HeaderTenant: "acme"}
	if len(headers) != len(want) {
		t.Errorf("headers = %v, want %v", headers, want)
	}
	for k, v := range want {
		if headers[k] != v {
			t.Errorf("%s = %q, want %q", k, headers[k], v)
		}
	}
	removed := resp.GetOkResponse().GetHeadersToRemove()
	slices.Sort(removed)
	if wantRemoved := []string{HeaderClientID, HeaderUsername, HeaderDegraded}; !slices.Equal(removed, wantRemoved) {
		t.Errorf("removed %v, want %v: a client must not be able to supply them", removed, wantRemoved)
	}
}

func TestDegradedMarksTheRequestAndStripsIdentity(t *testing.T) {
	resp := degraded("acme")
	headers := upstreamHeaders(t, resp)
	if headers[HeaderDegraded] != "true" || headers[HeaderTenant] != "acme" || len(headers) != 2 {
		t.Errorf("headers = %v", headers)
	}
	removed := resp.GetOkResponse().GetHeadersToRemove()
	for _, h := range identityHeaders {
		if !slices.Contains(removed, h) {
			t.Errorf("%s is not removed from a degraded request", h)
		}
	}
}

func TestDeniedResponses(t *testing.T) {
	for name, tc := range map[string]struct {
		resp      *authv3.CheckResponse
		code      codes.Code
		status    typev3.StatusCode
		challenge string
	}{
		"missing token":      {missingToken(), codes.Unauthenticated, typev3.StatusCode_Unauthorized, `Bearer`},
		"invalid token":      {invalidToken(), codes.Unauthenticated, typev3.StatusCode_Unauthorized, `Bearer error="invalid_token"`},
		"insufficient scope": {insufficientScope([]string{"a", "b"}), codes.PermissionDenied, typev3.StatusCode_Forbidden, `Bearer error="insufficient_scope", scope="a b"`},
		"unknown policy":     {unknownPolicy("x/y"), codes.PermissionDenied, typev3.StatusCode_Forbidden, ""},
		"unavailable":        {unavailable(), codes.Unavailable, typev3.StatusCode_ServiceUnavailable, ""},
	} {
		t.Run(name, func(t *testing.T) {
			headers := deniedWith(t, tc.resp, tc.code, tc.status)
			if got := headers["www-authenticate"]; got != tc.challenge {
				t.Errorf("www-authenticate = %q, want %q", got, tc.challenge)
			}
			if tc.resp.GetDeniedResponse().GetBody() == "" {
				t.Error("empty body")
			}
		})
	}
}
