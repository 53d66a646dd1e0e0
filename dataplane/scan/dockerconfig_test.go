package scan

import (
	"encoding/base64"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func basic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

func TestParseDockerConfig(t *testing.T) {
	kc, err := parseDockerConfig([]byte(`{"auths":{
		"https://reg.example:5000/v1/":{"auth":"` + basic("a", "b") + `"},
		"docker.io":{"username":"hub","password":"pw"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ ref, user, pass string }{
		{"reg.example:5000/x/y:1", "a", "b"},
		{"library/alpine:3", "hub", "pw"},
		{"other.example/z:1", "", ""},
	} {
		ref, err := name.ParseReference(tt.ref)
		if err != nil {
			t.Fatal(err)
		}
		a, err := kc.Resolve(ref.Context())
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := authn.Authorization(t.Context(), a)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Username != tt.user || cfg.Password != tt.pass {
			t.Errorf("%s: got %q/%q, want %q/%q", tt.ref, cfg.Username, cfg.Password, tt.user, tt.pass)
		}
	}
	if _, err := parseDockerConfig([]byte(`{"auths":{"h":{"auth":"!!"}}}`)); err == nil {
		t.Error("want error for non-base64 auth")
	}
}
