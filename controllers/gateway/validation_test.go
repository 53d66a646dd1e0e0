package gateway

import (
	"reflect"
	"strings"
	"testing"

	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
)

func ptr[T any](v T) *T { return &v }

func TestRouteSyntaxErrors(t *testing.T) {
	rule := func(m gatewayv1alpha1.RouteMatch) gatewayv1alpha1.RouteRule {
		return gatewayv1alpha1.RouteRule{Matches: []gatewayv1alpha1.RouteMatch{m}}
	}
	tests := []struct {
		name string
		spec gatewayv1alpha1.RouteSpec
		want []string
	}{
		{"valid regexes", gatewayv1alpha1.RouteSpec{Rules: []gatewayv1alpha1.RouteRule{rule(gatewayv1alpha1.RouteMatch{
			Path:    &gatewayv1alpha1.PathMatch{Type: gatewayv1alpha1.PathMatchRegularExpression, Value: `^/v[0-9]+/.*$`},
			Headers: []gatewayv1alpha1.HeaderMatch{{Name: "x-v", Type: gatewayv1alpha1.StringMatchRegularExpression, Value: ptr("^a|b$")}},
		})}}, nil},
		{"bad path regex", gatewayv1alpha1.RouteSpec{Rules: []gatewayv1alpha1.RouteRule{{}, rule(gatewayv1alpha1.RouteMatch{
			Path: &gatewayv1alpha1.PathMatch{Type: gatewayv1alpha1.PathMatchRegularExpression, Value: `/(a`},
		})}}, []string{`rules[1].matches[0].path: invalid regular expression "/(a": error parsing regexp: missing closing ): ` + "`/(a`"}},
		// RE2 has no backreferences; Envoy would reject this too.
		{"backreference in a header", gatewayv1alpha1.RouteSpec{Rules: []gatewayv1alpha1.RouteRule{rule(gatewayv1alpha1.RouteMatch{
			Headers: []gatewayv1alpha1.HeaderMatch{{Name: "x-a", Type: gatewayv1alpha1.StringMatchRegularExpression, Value: ptr(`(a)\1`)}},
		})}}, []string{`rules[0].matches[0].headers[x-a]: invalid regular expression "(a)\\1": error parsing regexp: invalid escape sequence: ` + "`\\1`"}},
		{"bad query regex", gatewayv1alpha1.RouteSpec{Rules: []gatewayv1alpha1.RouteRule{rule(gatewayv1alpha1.RouteMatch{
			QueryParams: []gatewayv1alpha1.QueryParamMatch{{Name: "q", Type: gatewayv1alpha1.StringMatchRegularExpression, Value: ptr(`[`)}},
		})}}, []string{`rules[0].matches[0].queryParams[q]: invalid regular expression "[": error parsing regexp: missing closing ]: ` + "`[`"}},
		{"exact values are not regexes", gatewayv1alpha1.RouteSpec{Rules: []gatewayv1alpha1.RouteRule{rule(gatewayv1alpha1.RouteMatch{
			Path:    &gatewayv1alpha1.PathMatch{Type: gatewayv1alpha1.PathMatchExact, Value: `/(a`},
			Headers: []gatewayv1alpha1.HeaderMatch{{Name: "x", Type: gatewayv1alpha1.StringMatchExact, Value: ptr(`[`)}},
		})}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := routeSyntaxErrors(&gatewayv1alpha1.Route{Spec: tc.spec})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestCheckPublicJWKS(t *testing.T) {
	tests := []struct {
		name, doc, wantErr string
	}{
		{"public RSA key", `{"keys":[{"kty":"RSA","n":"abc","e":"AQAB","kid":"1"}]}`, ""},
		{"not JSON", `keys`, "inline JWKS is not valid JSON"},
		{"no keys", `{"keys":[]}`, "inline JWKS has no keys"},
		{"key without kty", `{"keys":[{"n":"abc"}]}`, `inline JWKS key 0 has no "kty"`},
		{"RSA private key", `{"keys":[{"kty":"RSA","n":"a","e":"AQAB"},{"kty":"RSA","n":"a","e":"AQAB","p":"x"}]}`, `key 1 contains private or symmetric key material ("p")`},
		{"symmetric key", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, `key 0 contains private or symmetric key material ("k")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPublicJWKS(tc.doc)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
