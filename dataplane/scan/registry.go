package scan

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"

	"github.com/anchore/stereoscope/pkg/image"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// RegistryOptions configures how images are pulled.
type RegistryOptions struct {
	// PlainHTTP allows http:// registries (go-containerregistry already
	// uses plain HTTP for localhost and 127.0.0.1).
	PlainHTTP bool
	// InsecureSkipTLSVerify accepts any TLS certificate; for test
	// registries only.
	InsecureSkipTLSVerify bool
	// CAFile is a PEM bundle (file or directory) of extra trusted CAs.
	CAFile string
	// Username and Password are basic-auth credentials for the registry
	// named in the reference.
	Username, Password string
	// DockerConfigJSON is the content of a docker config.json (as in a
	// kubernetes.io/dockerconfigjson Secret); used when Username is empty.
	DockerConfigJSON []byte
}

// keychain returns the credentials source. Without explicit credentials it
// is anonymous: we never read the host's ~/.docker/config.json or run
// credential helpers, so what a scan can reach is exactly what it was given.
func (o RegistryOptions) keychain() (authn.Keychain, error) {
	switch {
	case o.Username != "":
		return staticKeychain{authn.FromConfig(authn.AuthConfig{Username: o.Username, Password: o.Password})}, nil
	case len(o.DockerConfigJSON) > 0:
		return parseDockerConfig(o.DockerConfigJSON)
	}
	return staticKeychain{authn.Anonymous}, nil
}

// stereoscope translates the options for syft's image pull.
func (o RegistryOptions) stereoscope() (*image.RegistryOptions, error) {
	kc, err := o.keychain()
	if err != nil {
		return nil, err
	}
	return &image.RegistryOptions{
		InsecureUseHTTP:       o.PlainHTTP,
		InsecureSkipTLSVerify: o.InsecureSkipTLSVerify,
		CAFileOrDir:           o.CAFile,
		Keychain:              kc,
	}, nil
}

type staticKeychain struct{ a authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

// resolveImage asks the registry for ref's manifest digest before syft pulls
// it. Stereoscope flattens registry errors into strings; doing the first
// request ourselves keeps go-containerregistry's typed errors so "not
// found" and "unauthorized" can be told apart, and lets the scan pin the
// exact digest it reports.
func resolveImage(ctx context.Context, ref string, o RegistryOptions) (name.Digest, error) {
	var nameOpts []name.Option
	if o.PlainHTTP {
		nameOpts = append(nameOpts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nameOpts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	kc, err := o.keychain()
	if err != nil {
		return name.Digest{}, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.InsecureSkipTLSVerify {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // opt-in for test registries
	}
	desc, err := remote.Head(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithTransport(tr))
	if err != nil {
		return name.Digest{}, classifyRegistryError(ref, err)
	}
	return r.Context().Digest(desc.Digest.String()), nil
}

// classifyRegistryError wraps err with ErrImageNotFound or ErrUnauthorized
// when the registry's answer says so.
func classifyRegistryError(ref string, err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("pull %s: %w (registry answered %d; check username/password or docker config): %w", ref, ErrUnauthorized, terr.StatusCode, err)
		case http.StatusNotFound:
			return fmt.Errorf("pull %s: %w: %w", ref, ErrImageNotFound, err)
		}
		for _, d := range terr.Errors {
			switch d.Code {
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return fmt.Errorf("pull %s: %w: %w", ref, ErrUnauthorized, err)
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode:
				return fmt.Errorf("pull %s: %w: %w", ref, ErrImageNotFound, err)
			}
		}
	}
	return fmt.Errorf("pull %s: %w", ref, err)
}
