package hostsync

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/cairn-platform/cairn/dataplane/funchost"
	"github.com/cairn-platform/cairn/dataplane/xds/translate"
)

// PathPrefix starts the path of direct calls: /fn/<namespace>/<name>/<rest>
// invokes that Function with the path /<rest>.
const PathPrefix = "/fn/"

// Registry maps "namespace/name" to the loaded Function serving it. It is an
// http.Handler: a request names its Function in the x-cairn-function header
// the gateway adds, or else with the /fn/<namespace>/<name>/ path prefix.
// Its methods are safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	entries map[string]*entry
	// closing counts Functions replaced or removed but still draining.
	closing sync.WaitGroup
}

// entry is one loaded Function and the requests it is serving: a replaced
// Function is closed only once they are done.
type entry struct {
	fn       *funchost.Function
	digest   string
	inflight sync.WaitGroup
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{entries: map[string]*entry{}}
}

// Key is how the Registry names a Function.
func Key(namespace, name string) string { return namespace + "/" + name }

// Digest returns the digest of the module serving key; false when none is.
func (r *Registry) Digest(key string) (string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.entries[key]
	if !ok {
		return "", false
	}
	return e.digest, true
}

// Len is the number of Functions served.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.entries)
}

// Set serves fn (compiled from digest) as key from now on. The Function it
// replaces is closed once its in-flight requests are done.
func (r *Registry) Set(ctx context.Context, key, digest string, fn *funchost.Function) {
	r.mu.Lock()
	old := r.entries[key]
	r.entries[key] = &entry{fn: fn, digest: digest}
	r.mu.Unlock()
	r.retire(ctx, old)
}

// Remove stops serving key; its Function is closed once its in-flight
// requests are done. It reports whether key was served.
func (r *Registry) Remove(ctx context.Context, key string) bool {
	r.mu.Lock()
	old, ok := r.entries[key]
	delete(r.entries, key)
	r.mu.Unlock()
	r.retire(ctx, old)
	return ok
}

// retire closes e's Function after its requests. Every request took its
// place in e.inflight under r.mu while e was still registered, so none is
// added once e is unreachable.
func (r *Registry) retire(ctx context.Context, e *entry) {
	if e == nil {
		return
	}
	r.closing.Add(1)
	go func() {
		defer r.closing.Done()
		e.inflight.Wait()
		_ = e.fn.Close(context.WithoutCancel(ctx))
	}()
}

// Close stops serving every Function and closes them all once their
// requests are done, or when ctx ends.
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	old := r.entries
	r.entries = map[string]*entry{}
	r.mu.Unlock()
	for _, e := range old {
		r.retire(ctx, e)
	}
	done := make(chan struct{})
	go func() {
		r.closing.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("closing functions: %w", ctx.Err())
	}
}

// acquire returns key's entry with a request counted in flight.
func (r *Registry) acquire(key string) *entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.entries[key]
	if !ok {
		return nil
	}
	e.inflight.Add(1)
	return e
}

// ServeHTTP invokes the Function the request names.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	key, req, err := route(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	e := r.acquire(key)
	if e == nil {
		http.Error(w, fmt.Sprintf("function %q is not loaded on this host", key), http.StatusNotFound)
		return
	}
	defer e.inflight.Done()
	funchost.Handler{Function: e.fn}.ServeHTTP(w, req)
}

var errNoFunction = errors.New("no function named: set the " + translate.FunctionHeader + " header to <namespace>/<name>, or call " + PathPrefix + "<namespace>/<name>/<path>")

// route finds which Function a request is for, and the request the guest
// sees: a direct call's path loses its /fn/<namespace>/<name> prefix.
func route(req *http.Request) (string, *http.Request, error) {
	if h := req.Header.Get(translate.FunctionHeader); h != "" {
		ns, name, ok := strings.Cut(h, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return "", nil, fmt.Errorf("%s header %q: want <namespace>/<name>", translate.FunctionHeader, h)
		}
		return Key(ns, name), req, nil
	}
	p := req.URL.EscapedPath()
	if !strings.HasPrefix(p, PathPrefix) {
		return "", nil, errNoFunction
	}
	parts := strings.SplitN(strings.TrimPrefix(p, PathPrefix), "/", 3)
	if len(parts) < 2 {
		return "", nil, errNoFunction
	}
	ns, err1 := url.PathUnescape(parts[0])
	name, err2 := url.PathUnescape(parts[1])
	if err := errors.Join(err1, err2); err != nil || ns == "" || name == "" {
		return "", nil, errNoFunction
	}
	rest := "/"
	if len(parts) == 3 {
		rest += parts[2]
	}
	path, err := url.PathUnescape(rest)
	if err != nil {
		return "", nil, fmt.Errorf("path %q: %w", rest, err)
	}
	inner := new(http.Request)
	*inner = *req
	u := *req.URL
	u.Path, u.RawPath = path, rest
	inner.URL = &u
	return Key(ns, name), inner, nil
}
