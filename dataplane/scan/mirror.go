package scan

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/grype/grype/db/v6/distribution"
)

// maxLatestJSON bounds the listing document; real ones are a few hundred
// bytes.
const maxLatestJSON = 1 << 20

// MirrorDB downloads the archive a grype latest.json (at latestJSONURL, e.g.
// on an in-cluster mirror) points to, verifies its checksum and imports it
// into dbDir. The archive must be served from the same scheme and host as
// latest.json so a listing can never send the scanner to another server.
// client nil means http.DefaultClient.
func MirrorDB(ctx context.Context, latestJSONURL, dbDir string, client *http.Client) error {
	if client == nil {
		client = http.DefaultClient
	}
	base, err := url.Parse(latestJSONURL)
	if err != nil {
		return fmt.Errorf("mirror DB: parse %q: %w", latestJSONURL, err)
	}
	doc, err := fetchLatest(ctx, client, latestJSONURL)
	if err != nil {
		return err
	}
	archiveURL, err := resolveArchiveURL(base, doc.Path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dbDir, 0o700); err != nil {
		return fmt.Errorf("mirror DB: %w", err)
	}
	tmp, err := os.MkdirTemp(dbDir, "mirror-download-")
	if err != nil {
		return fmt.Errorf("mirror DB: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	// Keep the archive's name: grype recognises the compression partly by
	// extension.
	file := filepath.Join(tmp, path.Base(archiveURL.Path))
	if err := download(ctx, client, archiveURL.String(), file, doc.Checksum); err != nil {
		return err
	}
	if err := ImportDB(ctx, file, dbDir); err != nil {
		return fmt.Errorf("mirror DB from %s: %w", latestJSONURL, err)
	}
	return nil
}

func fetchLatest(ctx context.Context, client *http.Client, u string) (*distribution.LatestDocument, error) {
	body, err := get(ctx, client, u)
	if err != nil {
		return nil, fmt.Errorf("mirror DB: fetch listing: %w", err)
	}
	defer func() { _ = body.Close() }()
	doc, err := distribution.NewLatestFromReader(io.LimitReader(body, maxLatestJSON))
	if err != nil {
		return nil, fmt.Errorf("mirror DB: %s: %w", u, err)
	}
	switch {
	case doc == nil:
		return nil, fmt.Errorf("mirror DB: %s is an empty listing", u)
	case doc.SchemaVersion.Model != v6.ModelVersion:
		return nil, fmt.Errorf("mirror DB: %s lists schema %s, this scanner reads v%d", u, doc.SchemaVersion, v6.ModelVersion)
	case doc.Path == "":
		return nil, fmt.Errorf("mirror DB: %s names no archive path", u)
	case doc.Checksum == "":
		return nil, fmt.Errorf("mirror DB: %s gives no archive checksum; refusing an unverifiable download", u)
	}
	return doc, nil
}

func resolveArchiveURL(base *url.URL, p string) (*url.URL, error) {
	ref, err := url.Parse(p)
	if err != nil {
		return nil, fmt.Errorf("mirror DB: archive path %q: %w", p, err)
	}
	u := base.ResolveReference(ref)
	if u.Scheme != base.Scheme || u.Host != base.Host {
		return nil, fmt.Errorf("mirror DB: archive %s is not on the mirror %s://%s", u, base.Scheme, base.Host)
	}
	return u, nil
}

func get(ctx context.Context, client *http.Client, u string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return resp.Body, nil
}

// download writes u to file and checks it against want ("sha256:<hex>").
func download(ctx context.Context, client *http.Client, u, file, want string) error {
	algo, wantHex, ok := strings.Cut(want, ":")
	if !ok || algo != "sha256" {
		return fmt.Errorf("mirror DB: unsupported checksum %q (want sha256:<hex>)", want)
	}
	body, err := get(ctx, client, u)
	if err != nil {
		return fmt.Errorf("mirror DB: download archive: %w", err)
	}
	defer func() { _ = body.Close() }()
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("mirror DB: %w", err)
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("mirror DB: download %s: %w", u, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, wantHex) {
		return fmt.Errorf("mirror DB: %s: %w: listing says sha256:%s, downloaded sha256:%s", u, ErrChecksumMismatch, wantHex, got)
	}
	return nil
}
