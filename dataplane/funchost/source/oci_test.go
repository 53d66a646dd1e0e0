package source

import (
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	ocitypes "github.com/google/go-containerregistry/pkg/v1/types"

	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
)

var module = []byte("\x00asm\x01\x00\x00\x00")

// TestResolveOCIImageIndex follows a multi-platform index to its wasm entry
// (docker buildx --platform wasip1/wasm) and refuses an index without one.
func TestResolveOCIImageIndex(t *testing.T) {
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")

	if _, err := PushOCI(t.Context(), host+"/fn/m:wasm", module, nil, false); err != nil {
		t.Fatal(err)
	}
	wasmDesc, err := remote.Get(mustRef(t, host+"/fn/m:wasm"))
	if err != nil {
		t.Fatal(err)
	}
	wasmImg, err := wasmDesc.Image()
	if err != nil {
		t.Fatal(err)
	}
	linuxImg, err := mutate.AppendLayers(empty.Image, static.NewLayer([]byte("tar"), ocitypes.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	index := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: linuxImg, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: wasmImg, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "wasip1", Architecture: "wasm"}}},
	)
	if err := remote.WriteIndex(mustRef(t, host+"/fn/m:multi"), index); err != nil {
		t.Fatal(err)
	}
	got, err := ResolveOCI(t.Context(), nil, nil, "", &serverlessv1alpha1.OCIModule{Ref: host + "/fn/m:multi"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.Manifest, host+"/fn/m@"+wasmDesc.Digest.String()) || got.Size != int64(len(module)) {
		t.Fatalf("resolved %+v; want the wasm manifest %s", got, wasmDesc.Digest)
	}

	linuxOnly := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: linuxImg, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	if err := remote.WriteIndex(mustRef(t, host+"/fn/m:linux"), linuxOnly); err != nil {
		t.Fatal(err)
	}
	_, err = ResolveOCI(t.Context(), nil, nil, "", &serverlessv1alpha1.OCIModule{Ref: host + "/fn/m:linux"})
	var p *OCIProblem
	if !errors.As(err, &p) || !p.Invalid || !strings.Contains(p.Message, "0 manifests for the wasm architecture") {
		t.Fatalf("err = %v; want an Invalid problem about the wasm architecture", err)
	}
}

func TestDockerConfigAuth(t *testing.T) {
	for _, tc := range []struct {
		name, config, registry string
		want                   authn.AuthConfig
		err                    string
	}{
		{"bare host", `{"auths":{"r.example:5000":{"username":"u","password":"p"}}}`, "r.example:5000", authn.AuthConfig{Username: "u", Password: "p"}, ""},
		{"URL key", `{"auths":{"https://r.example/v1/":{"auth":"dTpw"}}}`, "r.example", authn.AuthConfig{Username: "u", Password: "p"}, ""},
		{"docker hub", `{"auths":{"https://index.docker.io/v1/":{"username":"u","password":"p"}}}`, name.DefaultRegistry, authn.AuthConfig{Username: "u", Password: "p"}, ""},
		{"other registry", `{"auths":{"a.example":{"username":"u"}}}`, "b.example", authn.AuthConfig{}, "no credentials for b.example"},
		{"not json", `{auths`, "r", authn.AuthConfig{}, "is not a docker config"},
		{"empty", ``, "r", authn.AuthConfig{}, "has no .dockerconfigjson key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := dockerConfigAuth([]byte(tc.config), tc.registry)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v; want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.Authorization()
			if err != nil {
				t.Fatal(err)
			}
			// The auth field ("dTpw" is base64 "u:p") decodes to the user and
			// password.
			if got.Username != tc.want.Username || got.Password != tc.want.Password {
				t.Fatalf("auth = %+v; want %+v", *got, tc.want)
			}
		})
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
