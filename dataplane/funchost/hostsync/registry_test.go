package hostsync

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRoute(t *testing.T) {
	for _, tc := range []struct {
		target, header string
		key, path, uri string
		err            string
	}{
		{target: "/a/b?c=d", header: "shop/thumb", key: "shop/thumb", path: "/a/b", uri: "/a/b?c=d"},
		// The header wins over the path.
		{target: "/fn/x/y/z", header: "shop/thumb", key: "shop/thumb", path: "/fn/x/y/z", uri: "/fn/x/y/z"},
		{target: "/fn/shop/thumb/a/b?c=d", key: "shop/thumb", path: "/a/b", uri: "/a/b?c=d"},
		{target: "/fn/shop/thumb", key: "shop/thumb", path: "/", uri: "/"},
		{target: "/fn/shop/thumb/", key: "shop/thumb", path: "/", uri: "/"},
		{target: "/fn/shop/thumb/a%2Fb", key: "shop/thumb", path: "/a/b", uri: "/a%2Fb"},
		{target: "/fn/shop", err: "x-cairn-function"},
		{target: "/fn//thumb/", err: "x-cairn-function"},
		{target: "/other", err: "x-cairn-function"},
		{target: "/", header: "no-slash", err: "want <namespace>/<name>"},
		{target: "/", header: "a/b/c", err: "want <namespace>/<name>"},
	} {
		req := httptest.NewRequest(http.MethodGet, tc.target, nil)
		if tc.header != "" {
			req.Header.Set("X-Cairn-Function", tc.header)
		}
		key, inner, err := route(req)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %q: error %v, want one containing %q", tc.target, tc.header, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %q: %v", tc.target, tc.header, err)
			continue
		}
		if key != tc.key || inner.URL.Path != tc.path || inner.URL.RequestURI() != tc.uri {
			t.Errorf("%s %q: key %q, path %q, URI %q; want %q, %q, %q", tc.target, tc.header, key, inner.URL.Path, inner.URL.RequestURI(), tc.key, tc.path, tc.uri)
		}
		if tc.header == "" && req.URL.Path != strings.SplitN(tc.target, "?", 2)[0] && !strings.Contains(tc.target, "%") {
			t.Errorf("%s: the original request was modified to %q", tc.target, req.URL.Path)
		}
	}
}

func TestUnknownFunctionIs404(t *testing.T) {
	r := NewRegistry()
	for _, header := range []string{"shop/missing", ""} {
		req := httptest.NewRequest(http.MethodGet, "/fn/shop/missing/x", nil)
		if header != "" {
			req.Header.Set("x-cairn-function", header)
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), `function "shop/missing" is not loaded on this host`) {
			t.Errorf("header %q: %d %q", header, w.Code, w.Body.String())
		}
	}
}
