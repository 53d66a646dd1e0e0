package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheckPublicJWKS(t *testing.T) {
	tests := []struct {
		name, doc, wantErr string
	}{
		{"public RSA key", `{"keys":[{"kty":"RSA","n":"abc","e":"AQAB","kid":"1"}]}`, ""},
		{"not JSON", `keys`, "the JWKS is not valid JSON"},
		{"no keys", `{"keys":[]}`, "the JWKS has no keys"},
		{"key without kty", `{"keys":[{"n":"abc"}]}`, `JWKS key 0 has no "kty"`},
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

func TestFetchJWKS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}`))
		case "/private":
			_, _ = w.Write([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"secret"}]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := fetchJWKS(ctx, srv.Client(), srv.URL+"/ok"); err != nil {
		t.Errorf("valid JWKS: %v", err)
	}
	for path, want := range map[string]string{
		"/private": "private or symmetric key material",
		"/missing": "HTTP 404",
	} {
		if err := fetchJWKS(ctx, srv.Client(), srv.URL+path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", path, err, want)
		}
	}
	// A server whose certificate the client does not trust is refused.
	if err := fetchJWKS(ctx, &http.Client{}, srv.URL+"/ok"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: err = %v", err)
	}
}
