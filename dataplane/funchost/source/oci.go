package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	ocitypes "github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
	"github.com/cairn-platform/cairn/internal/kube"
)

// WasmLayerMediaTypes are the layer media types taken for a WebAssembly
// module: the CNCF wasm OCI artifact layout (wasm-to-oci, Spin, Cairn's own
// pushes), the containerd "compat" layout, and the plain IANA type.
var WasmLayerMediaTypes = []ocitypes.MediaType{
	"application/vnd.wasm.content.layer.v1+wasm",
	"application/vnd.module.wasm.content.layer.v1+wasm",
	"application/wasm",
}

// WasmConfigMediaType is the config media type of a CNCF wasm artifact.
const WasmConfigMediaType ocitypes.MediaType = "application/vnd.wasm.config.v0+json"

// OCIModule is a module resolved in a registry.
type OCIModule struct {
	// Manifest is the artifact the module was found in,
	// "registry/repository@sha256:…".
	Manifest string
	// Digest of the module layer, "sha256:…"; it is the sha256 of the module
	// itself, as for every other source.
	Digest string
	// Size of the module layer in bytes.
	Size int64
}

// OCIProblem is why an OCI module cannot be used. NotFound is a missing
// reference or blob, Invalid an artifact that holds no usable module; other
// problems are a registry that failed or refused the pull, worth a retry.
type OCIProblem struct {
	NotFound, Invalid bool
	Message           string
}

func (p *OCIProblem) Error() string { return p.Message }

// ResolveOCI finds the module layer of an OCI source: it follows the tag (or
// digest) to a manifest, through an image index to its wasm platform entry,
// and picks the single layer of a wasm media type. It pulls no blob.
// A problem is returned as *OCIProblem; other errors are the API server's.
func ResolveOCI(ctx context.Context, c client.Reader, httpClient *http.Client, ns string, src *serverlessv1alpha1.OCIModule) (OCIModule, error) {
	ref, opts, err := ociOptions(ctx, c, httpClient, ns, src)
	if err != nil {
		return OCIModule{}, err
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return OCIModule{}, pullProblem(src.Ref, err)
	}
	if desc.MediaType.IsIndex() {
		if desc, err = wasmPlatformManifest(ref, desc, opts); err != nil {
			return OCIModule{}, err
		}
	}
	img, err := desc.Image()
	if err != nil {
		return OCIModule{}, &OCIProblem{Invalid: true, Message: fmt.Sprintf("%s is not an OCI artifact: %v", src.Ref, err)}
	}
	manifest, err := img.Manifest()
	if err != nil {
		return OCIModule{}, pullProblem(src.Ref, err)
	}
	var found []v1.Descriptor
	var seen []string
	for _, l := range manifest.Layers {
		if slices.Contains(WasmLayerMediaTypes, l.MediaType) {
			found = append(found, l)
		}
		seen = append(seen, string(l.MediaType))
	}
	if len(found) != 1 {
		return OCIModule{}, &OCIProblem{Invalid: true, Message: fmt.Sprintf("%s must hold exactly one WebAssembly layer (media type %s); it has %d among its layers [%s]",
			src.Ref, WasmLayerMediaTypes[0], len(found), strings.Join(seen, ", "))}
	}
	layer := found[0]
	if layer.Size > MaxModuleBytes {
		return OCIModule{}, &OCIProblem{Invalid: true, Message: fmt.Sprintf("the module layer of %s is %d bytes, more than the %d MiB a module may have", src.Ref, layer.Size, MaxModuleBytes>>20)}
	}
	return OCIModule{
		Manifest: ref.Context().Digest(desc.Digest.String()).String(),
		Digest:   layer.Digest.String(),
		Size:     layer.Size,
	}, nil
}

// PullOCI fetches the module layer digest from the source's repository and
// checks that its content hashes to digest.
func PullOCI(ctx context.Context, c client.Reader, httpClient *http.Client, ns string, src *serverlessv1alpha1.OCIModule, digest string) ([]byte, error) {
	ref, opts, err := ociOptions(ctx, c, httpClient, ns, src)
	if err != nil {
		return nil, err
	}
	blob := ref.Context().Digest(digest)
	layer, err := remote.Layer(blob, opts...)
	if err != nil {
		return nil, pullProblem(blob.String(), err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, pullProblem(blob.String(), err)
	}
	defer func() { _ = rc.Close() }()
	module, err := io.ReadAll(io.LimitReader(rc, MaxModuleBytes+1))
	if err != nil {
		return nil, pullProblem(blob.String(), err)
	}
	if len(module) > MaxModuleBytes {
		return nil, &OCIProblem{Message: fmt.Sprintf("%s is larger than %d MiB", blob, MaxModuleBytes>>20)}
	}
	sum := sha256.Sum256(module)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return nil, &OCIProblem{Message: fmt.Sprintf("the registry served %s for %s", got, blob)}
	}
	return module, nil
}

// ociOptions parses the reference and builds the pull options, with the
// credentials of the pull Secret if there is one.
func ociOptions(ctx context.Context, c client.Reader, httpClient *http.Client, ns string, src *serverlessv1alpha1.OCIModule) (name.Reference, []remote.Option, error) {
	var nameOpts []name.Option
	if src.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	ref, err := name.ParseReference(src.Ref, nameOpts...)
	if err != nil {
		return nil, nil, &OCIProblem{Message: fmt.Sprintf("oci.ref %q: %v", src.Ref, err)}
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithUserAgent("cairn")}
	if httpClient != nil && httpClient.Transport != nil {
		opts = append(opts, remote.WithTransport(httpClient.Transport))
	}
	if src.PullSecretRef == nil {
		return ref, append(opts, remote.WithAuth(authn.Anonymous)), nil
	}
	var secret corev1.Secret
	found, err := kube.GetIfExists(ctx, c, types.NamespacedName{Namespace: ns, Name: src.PullSecretRef.Name}, &secret)
	if err != nil {
		return nil, nil, err
	}
	if !found {
		return nil, nil, &OCIProblem{Message: fmt.Sprintf("pull Secret %q not found", src.PullSecretRef.Name)}
	}
	auth, err := dockerConfigAuth(secret.Data[corev1.DockerConfigJsonKey], ref.Context().RegistryStr())
	if err != nil {
		return nil, nil, &OCIProblem{Message: fmt.Sprintf("pull Secret %q: %v", src.PullSecretRef.Name, err)}
	}
	return ref, append(opts, remote.WithAuth(auth)), nil
}

// dockerConfigAuth finds the credentials for registry in a
// kubernetes.io/dockerconfigjson payload. Keys may be bare hosts or URLs
// ("https://index.docker.io/v1/"), as docker login writes them.
func dockerConfigAuth(data []byte, registry string) (authn.Authenticator, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("it has no %s key", corev1.DockerConfigJsonKey)
	}
	var cfg struct {
		Auths map[string]authn.AuthConfig `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("%s is not a docker config: %w", corev1.DockerConfigJsonKey, err)
	}
	for key, a := range cfg.Auths {
		host := key
		if u, err := url.Parse(key); err == nil && u.Host != "" {
			host = u.Host
		}
		if host == registry || (registry == name.DefaultRegistry && host == "docker.io") {
			return authn.FromConfig(a), nil
		}
	}
	return nil, fmt.Errorf("it has no credentials for %s", registry)
}

// wasmPlatformManifest picks the manifest for the wasm architecture of an
// image index (docker buildx --platform wasi/wasm, wasip1/wasm).
func wasmPlatformManifest(ref name.Reference, index *remote.Descriptor, opts []remote.Option) (*remote.Descriptor, error) {
	idx, err := index.ImageIndex()
	if err != nil {
		return nil, pullProblem(ref.String(), err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, pullProblem(ref.String(), err)
	}
	var wasm []v1.Descriptor
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.Architecture == "wasm" {
			wasm = append(wasm, d)
		}
	}
	if len(wasm) != 1 {
		return nil, &OCIProblem{Invalid: true, Message: fmt.Sprintf("%s is an image index with %d manifests for the wasm architecture; it needs exactly one", ref, len(wasm))}
	}
	desc, err := remote.Get(ref.Context().Digest(wasm[0].Digest.String()), opts...)
	if err != nil {
		return nil, pullProblem(ref.String(), err)
	}
	return desc, nil
}

// pullProblem words a registry error for a condition message.
func pullProblem(what string, err error) *OCIProblem {
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case http.StatusNotFound:
			return &OCIProblem{NotFound: true, Message: fmt.Sprintf("%s not found in the registry", what)}
		case http.StatusUnauthorized, http.StatusForbidden:
			return &OCIProblem{Message: fmt.Sprintf("the registry refused to serve %s (HTTP %d): check oci.pullSecretRef", what, terr.StatusCode)}
		}
	}
	return &OCIProblem{Message: fmt.Sprintf("pulling %s: %v", what, err)}
}

// PushOCI stores module at ref as a CNCF wasm artifact: one layer of type
// WasmLayerMediaTypes[0], a wasm config, an OCI manifest. It returns the
// manifest reference ("registry/repository@sha256:…"). auth may be nil for
// an anonymous push.
func PushOCI(ctx context.Context, ref string, module []byte, auth authn.Authenticator, insecure bool) (string, error) {
	var nameOpts []name.Option
	if insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nameOpts...)
	if err != nil {
		return "", fmt.Errorf("parsing %q: %w", ref, err)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{Architecture: "wasm", OS: "wasip1"})
	if err != nil {
		return "", fmt.Errorf("building the artifact config: %w", err)
	}
	img, err = mutate.AppendLayers(img, static.NewLayer(module, WasmLayerMediaTypes[0]))
	if err != nil {
		return "", fmt.Errorf("adding the module layer: %w", err)
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, ocitypes.OCIManifestSchema1), WasmConfigMediaType)
	if auth == nil {
		auth = authn.Anonymous
	}
	if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithAuth(auth), remote.WithUserAgent("cairn")); err != nil {
		return "", fmt.Errorf("pushing %s: %w", r, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("digesting the artifact: %w", err)
	}
	return r.Context().Digest(d.String()).String(), nil
}
