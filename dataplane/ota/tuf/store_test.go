package tuf

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStores(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "trusted")
	for name, s := range map[string]Store{"dir": DirStore(dir), "memory": &MemoryStore{}} {
		t.Run(name, func(t *testing.T) {
			if _, err := s.Load(RootFile); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Load(missing) = %v, want ErrNotFound", err)
			}
			if err := s.Save(RootFile, []byte("v1")); err != nil {
				t.Fatal(err)
			}
			if err := s.Save(RootFile, []byte("v2")); err != nil {
				t.Fatal(err)
			}
			if b, err := s.Load(RootFile); err != nil || string(b) != "v2" {
				t.Fatalf("Load = %q, %v", b, err)
			}
			if err := s.Delete(RootFile); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(RootFile); err != nil {
				t.Fatalf("Delete(missing) = %v", err)
			}
			if _, err := s.Load(RootFile); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Load(deleted) = %v, want ErrNotFound", err)
			}
		})
	}
	if err := DirStore(dir).Save(TargetsFile, []byte("x")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, TargetsFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %o, want 600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d files in the store, want 1 (temporary files left?)", len(entries))
	}
	if err := DirStore(dir).Save("../escape", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("Save(../escape) = %v, want ErrInvalid", err)
	}
}

func TestHTTPFetcher(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer device" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/repo/timestamp.json":
			_, _ = w.Write([]byte("0123456789"))
		case "/repo/stream.json":
			w.Header().Set("Transfer-Encoding", "chunked") // no Content-Length
			_, _ = w.Write([]byte(strings.Repeat("x", 100)))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL + "/repo/")
	f := HTTPFetcher{Base: base, Client: srv.Client(), Prepare: func(r *http.Request) { r.Header.Set("Authorization", "Bearer device") }}
	ctx := context.Background()

	if b, err := f.Fetch(ctx, TimestampFile, 10); err != nil || string(b) != "0123456789" {
		t.Errorf("Fetch = %q, %v", b, err)
	}
	if _, err := f.Fetch(ctx, TimestampFile, 9); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Fetch over limit = %v, want ErrTooLarge", err)
	}
	if _, err := f.Fetch(ctx, "stream.json", 99); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Fetch of stream over limit = %v, want ErrTooLarge", err)
	}
	if _, err := f.Fetch(ctx, "2.root.json", 10); !errors.Is(err, ErrNotFound) {
		t.Errorf("Fetch(missing) = %v, want ErrNotFound", err)
	}
	f.Prepare = nil
	if _, err := f.Fetch(ctx, TimestampFile, 10); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Fetch without credentials = %v, want a non-NotFound error", err)
	}
}
