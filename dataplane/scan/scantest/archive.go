package scantest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/grype/grype/db/v6/distribution"
	"github.com/klauspost/compress/zstd"
)

// PackageDB tars and gzips dir/vulnerability.db the way grype-db publishes
// it (the DB file at the archive root) and returns the archive path, named
// like a published one.
func PackageDB(t testing.TB, dir string) string {
	t.Helper()
	return packageDB(t, dir, "tar.gz")
}

// PackageDBZstd is PackageDB with zstd compression (.tar.zst), the format
// grype-db publishes by default.
func PackageDBZstd(t testing.TB, dir string) string {
	t.Helper()
	return packageDB(t, dir, "tar.zst")
}

func packageDB(t testing.TB, dir, ext string) string {
	db, err := os.ReadFile(filepath.Join(dir, v6.VulnerabilityDBFileName))
	if err != nil {
		t.Fatalf("scantest: %v", err)
	}
	var buf bytes.Buffer
	var zw io.WriteCloser
	if ext == "tar.zst" {
		zw, err = zstd.NewWriter(&buf)
		if err != nil {
			t.Fatalf("scantest: %v", err)
		}
	} else {
		zw = gzip.NewWriter(&buf)
	}
	tw := tar.NewWriter(zw)
	hdr := &tar.Header{Name: v6.VulnerabilityDBFileName, Mode: 0o644, Size: int64(len(db)), ModTime: time.Now()}
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatalf("scantest: %v", err)
	}
	if _, err := tw.Write(db); err != nil {
		t.Fatalf("scantest: %v", err)
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("scantest: %v", err)
	}
	if err := zw.Close(); err != nil {
		t.Fatalf("scantest: %v", err)
	}
	now := time.Now().UTC()
	name := fmt.Sprintf("vulnerability-db_v%d.%d.%d_%s_%d.%s",
		v6.ModelVersion, v6.Revision, v6.Addition, now.Format("2006-01-02T15-04-05Z"), now.Unix(), ext)
	out := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatalf("scantest: %v", err)
	}
	return out
}

// MirrorOption changes what ServeMirror serves.
type MirrorOption func(*mirror)

type mirror struct{ corrupt bool }

// CorruptArchive serves the archive with one byte flipped while latest.json
// still advertises the original checksum, as a damaged transfer would.
func CorruptArchive() MirrorOption { return func(m *mirror) { m.corrupt = true } }

// ServeMirror serves archive and a real latest.json (written with grype's
// distribution package, checksum included) from an httptest server on
// 127.0.0.1 and returns the latest.json URL.
func ServeMirror(t testing.TB, archive string, opts ...MirrorOption) string {
	t.Helper()
	var m mirror
	for _, o := range opts {
		o(&m)
	}
	a, err := distribution.NewArchive(archive, time.Now().UTC().Truncate(time.Second), v6.ModelVersion, v6.Revision, v6.Addition)
	if err != nil {
		t.Fatalf("scantest: describe archive: %v", err)
	}
	doc := distribution.NewLatestDocument(*a)
	var latest bytes.Buffer
	if err := doc.Write(&latest); err != nil {
		t.Fatalf("scantest: write latest.json: %v", err)
	}
	body, err := os.ReadFile(archive)
	if err != nil {
		t.Fatalf("scantest: %v", err)
	}
	if m.corrupt {
		body = bytes.Clone(body)
		body[len(body)/2] ^= 0xff
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v6/"+distribution.LatestFileName, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(latest.Bytes())
	})
	mux.HandleFunc("GET /v6/"+a.Path, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(body)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/v6/" + distribution.LatestFileName
}
