// Package kubesource backs the OTA server with the cluster: TUF metadata
// from the repository ConfigMaps "cairn firmware publish" writes, images
// from the origin (URL or OCI artifact) of a Firmware with that digest, and
// device credentials checked like the edge hub checks them on MQTT.
package kubesource

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/ota/server"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
	"github.com/cairn-platform/cairn/internal/kube"
)

// Source answers the OTA server's questions from the cluster.
type Source struct {
	// Client reads ConfigMaps and Firmware (the manager's cache).
	Client client.Reader
	// HTTP downloads images from URLs; nil is http.DefaultClient.
	HTTP *http.Client
	// Authenticate checks a device's credential ("<namespace>/<name>").
	Authenticate func(ctx context.Context, device protocol.Device, credential string) bool
}

// Config is the OTA server configuration with every lookup set.
func (s *Source) Config(cfg server.Config) server.Config {
	cfg.Metadata, cfg.Target, cfg.Fetch, cfg.Authorize = s.Metadata, s.Target, s.Fetch, s.Authorize
	return cfg
}

// Metadata returns one metadata file of the repository ConfigMap.
func (s *Source) Metadata(ctx context.Context, ns, repo, file string) ([]byte, error) {
	var cm corev1.ConfigMap
	found, err := kube.GetIfExists(ctx, s.Client, types.NamespacedName{Namespace: ns, Name: repo}, &cm)
	if err != nil {
		return nil, fmt.Errorf("reading repository ConfigMap %s/%s: %w", ns, repo, err)
	}
	if !found {
		return nil, fmt.Errorf("repository %s/%s: %w", ns, repo, server.ErrNotFound)
	}
	if v, ok := cm.Data[file]; ok {
		return []byte(v), nil
	}
	if v, ok := cm.BinaryData[file]; ok {
		return v, nil
	}
	return nil, fmt.Errorf("repository %s/%s has no %s: %w", ns, repo, file, server.ErrNotFound)
}

// Target reads a target's digest and length from the repository's
// targets.json. The server only routes with it; devices verify the signed
// metadata themselves.
func (s *Source) Target(ctx context.Context, ns, repo, path string) (string, int64, error) {
	raw, err := s.Metadata(ctx, ns, repo, "targets.json")
	if err != nil {
		return "", 0, err
	}
	var targets struct {
		Signed struct {
			Targets map[string]struct {
				Length int64             `json:"length"`
				Hashes map[string]string `json:"hashes"`
			} `json:"targets"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(raw, &targets); err != nil {
		return "", 0, fmt.Errorf("repository %s/%s: targets.json: %w", ns, repo, err)
	}
	t, ok := targets.Signed.Targets[path]
	if !ok || t.Hashes["sha256"] == "" {
		return "", 0, fmt.Errorf("repository %s/%s has no target %q: %w", ns, repo, path, server.ErrNotFound)
	}
	return t.Hashes["sha256"], t.Length, nil
}

// Fetch opens the image with this digest from the origin of a Firmware of
// ns that names it. The origin is contacted on the first Read, so the
// server can check access to a cached image for free.
func (s *Source) Fetch(ctx context.Context, ns, sha256 string) (io.ReadCloser, error) {
	var list edgev1alpha1.FirmwareList
	if err := s.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("listing Firmware in %s: %w", ns, err)
	}
	for i := range list.Items {
		a := list.Items[i].Spec.Artifact
		if a.SHA256 != sha256 {
			continue
		}
		return &lazyReader{open: func() (io.ReadCloser, error) { return s.open(ctx, a) }}, nil
	}
	return nil, fmt.Errorf("no Firmware in %s has image sha256:%s: %w", ns, sha256, server.ErrNotFound)
}

func (s *Source) open(ctx context.Context, a edgev1alpha1.Artifact) (io.ReadCloser, error) {
	if a.OCI != nil {
		ref, err := name.ParseReference(*a.OCI)
		if err != nil {
			return nil, fmt.Errorf("artifact.oci %q: %w", *a.OCI, err)
		}
		// "cairn firmware publish --oci" pushes the image as one
		// uncompressed layer, so the blob's digest is the image's.
		layer, err := remote.Layer(ref.Context().Digest("sha256:"+a.SHA256), remote.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("pulling sha256:%s from %s: %w", a.SHA256, ref.Context(), err)
		}
		return layer.Compressed()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *a.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("artifact.url: %w", err)
	}
	hc := s.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("downloading the firmware image: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("downloading the firmware image from %s: %s", req.URL.Redacted(), resp.Status)
	}
	return resp.Body, nil
}

// Authorize accepts HTTP basic credentials of a device of namespace ns.
func (s *Source) Authorize(r *http.Request, ns string) bool {
	user, credential, ok := r.BasicAuth()
	if !ok {
		return false
	}
	dev, err := protocol.ParseDevice(user)
	if err != nil || dev.Namespace != ns {
		return false
	}
	return s.Authenticate(r.Context(), dev, credential)
}

// lazyReader opens its origin on the first Read.
type lazyReader struct {
	open func() (io.ReadCloser, error)
	once sync.Once
	rc   io.ReadCloser
	err  error
}

func (l *lazyReader) Read(p []byte) (int, error) {
	l.once.Do(func() { l.rc, l.err = l.open() })
	if l.err != nil {
		return 0, l.err
	}
	return l.rc.Read(p)
}

func (l *lazyReader) Close() error {
	if l.rc != nil {
		return l.rc.Close()
	}
	return nil
}
