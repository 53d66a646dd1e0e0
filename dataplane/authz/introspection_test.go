package authz

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseIntrospection(t *testing.T) {
	in, err := parseIntrospection([]byte(`{"active":true,"scope":"orders:read  orders:write","exp":1893456000,
		"sub":"user-1","client_id":"shop","username":"ada","iss":"ignored"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := introspection{Active: true, Scopes: []string{"orders:read", "orders:write"}, Expiry: time.Unix(1893456000, 0),
		Subject: "user-1", ClientID: "shop", Username: "ada"}
	if in.Active != want.Active || !slices.Equal(in.Scopes, want.Scopes) || !in.Expiry.Equal(want.Expiry) ||
		in.Subject != want.Subject || in.ClientID != want.ClientID || in.Username != want.Username {
		t.Fatalf("parsed %+v, want %+v", in, want)
	}
}

func TestParseIntrospectionFractionalExpiry(t *testing.T) {
	in, err := parseIntrospection([]byte(`{"active":true,"exp":1893456000.5}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(1893456000, 5e8); !in.Expiry.Equal(want) {
		t.Fatalf("expiry = %v, want %v", in.Expiry, want)
	}
}

func TestParseIntrospectionInactiveAndNoExpiry(t *testing.T) {
	in, err := parseIntrospection([]byte(`{"active":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if in.Active || !in.Expiry.IsZero() || len(in.Scopes) != 0 {
		t.Fatalf("parsed %+v, want inactive with no expiry and no scopes", in)
	}
}

func TestParseIntrospectionRejectsMalformedAnswers(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":         `<html>gateway timeout</html>`,
		"no active member": `{"scope":"a"}`,
		"active as string": `{"active":"true"}`,
		"exp as string":    `{"active":true,"exp":"tomorrow"}`,
		"empty":            ``,
	} {
		if _, err := parseIntrospection([]byte(body)); err == nil || !strings.Contains(err.Error(), "decoding introspection response") {
			t.Errorf("%s: err = %v, want a decoding error", name, err)
		}
	}
}
