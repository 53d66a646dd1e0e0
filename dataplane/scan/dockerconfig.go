package scan

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// dockerConfig is the part of a docker config.json that carries inline
// credentials. credsStore/credHelpers are deliberately not supported: they
// would execute host binaries.
type dockerConfig struct {
	Auths map[string]dockerAuth `json:"auths"`
}

type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// configKeychain resolves credentials from a parsed docker config by
// registry host.
type configKeychain map[string]authn.AuthConfig

func parseDockerConfig(b []byte) (authn.Keychain, error) {
	var c dockerConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parse docker config JSON: %w", err)
	}
	kc := configKeychain{}
	for host, a := range c.Auths {
		ac := authn.AuthConfig{
			Username:      a.Username,
			Password:      a.Password,
			IdentityToken: a.IdentityToken,
			RegistryToken: a.RegistryToken,
		}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("docker config: auth for %q is not base64: %w", host, err)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("docker config: auth for %q is not user:password", host)
			}
			ac.Username, ac.Password = user, pass
		}
		kc[normalizeRegistryHost(host)] = ac
	}
	return kc, nil
}

// normalizeRegistryHost turns config keys such as "https://host:5000/v1/"
// into "host:5000"; Docker Hub's legacy key maps to index.docker.io.
func normalizeRegistryHost(h string) string {
	h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	if h == "docker.io" || h == "registry-1.docker.io" {
		return "index.docker.io"
	}
	return h
}

func (k configKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if ac, ok := k[normalizeRegistryHost(r.RegistryStr())]; ok {
		return authn.FromConfig(ac), nil
	}
	return authn.Anonymous, nil
}
