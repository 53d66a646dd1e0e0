package scantest

import (
	"crypto/subtle"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// StartRegistry serves an in-memory OCI registry on 127.0.0.1 over plain
// HTTP for the test's lifetime and returns its host:port.
func StartRegistry(t testing.TB) string {
	t.Helper()
	return serveRegistry(t, "", "")
}

// StartAuthRegistry is StartRegistry behind HTTP basic auth: requests
// without the right username/password get 401 with a Basic challenge.
func StartAuthRegistry(t testing.TB, username, password string) string {
	t.Helper()
	return serveRegistry(t, username, password)
}

func serveRegistry(t testing.TB, user, pass string) string {
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if user != "" {
		h = basicAuth(h, user, pass)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func basicAuth(next http.Handler, user, pass string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(pass)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="scantest"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Push uploads img to host as repoTag ("repo:tag") and returns its
// manifest digest. auth is optional (for StartAuthRegistry).
func Push(t testing.TB, host, repoTag string, img v1.Image, auth ...authn.Authenticator) string {
	t.Helper()
	ref, err := name.ParseReference(host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatalf("scantest: %v", err)
	}
	opts := []remote.Option{}
	if len(auth) > 0 {
		opts = append(opts, remote.WithAuth(auth[0]))
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatalf("scantest: push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatalf("scantest: digest: %v", err)
	}
	return d.String()
}
