package server

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cairn-platform/cairn/dataplane/scan"
	"github.com/cairn-platform/cairn/dataplane/scan/report"
	"github.com/cairn-platform/cairn/dataplane/scan/scanapi"
	"github.com/cairn-platform/cairn/dataplane/scan/scantest"
)

// TestServer scans images from a loopback registry through the HTTP API and
// the scanapi client the manager uses: reports, the digest cache (a moved
// tag is scanned again), error codes and the bearer token.
func TestServer(t *testing.T) {
	build, dbDir := t.TempDir(), t.TempDir()
	scantest.BuildDB(t, build, scantest.DefaultVulns())
	if err := scan.ImportDB(context.Background(), scantest.PackageDB(t, build), dbDir); err != nil {
		t.Fatal(err)
	}
	scanner := scan.NewScanner(scan.Options{DBDir: dbDir})
	t.Cleanup(func() { _ = scanner.Close() })
	reg := prometheus.NewRegistry()
	srv, err := New(Options{Scanner: scanner, Token: "t0ken", Log: logr.Discard(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	client := &scanapi.Client{BaseURL: hs.URL, Token: "t0ken"}
	ctx := context.Background()

	registry := scantest.StartRegistry(t)
	vulnerable := scantest.Push(t, registry, "app:1", scantest.BuildImage(t, scantest.ImageOptions{}))
	image := registry + "/app:1"

	rep, err := client.ScanImage(ctx, image)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Subject != image || rep.Digest != vulnerable || len(rep.Findings) != 2 || rep.DBBuilt.IsZero() {
		t.Errorf("report = %+v, want 2 findings for %s", rep, vulnerable)
	}
	if _, err := client.ScanImage(ctx, image); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(srv.metrics.scans.WithLabelValues("cached")); got != 1 {
		t.Errorf("cached scans = %v, want the second request answered from the cache", got)
	}

	fixed := scantest.Push(t, registry, "app:1", scantest.BuildImage(t, scantest.ImageOptions{APKVersion: scantest.FixedAPKVersion}))
	rep, err = client.ScanImage(ctx, image)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Digest != fixed || len(rep.Findings) != 1 || rep.Findings[0].ID != scantest.GoVulnID {
		t.Errorf("after moving the tag: digest %s findings %+v, want %s with only %s", rep.Digest, rep.Findings, fixed, scantest.GoVulnID)
	}

	// A client that gives up does not cancel the scan: it finishes on its
	// own and the retry gets the result from the cache.
	release := make(chan struct{})
	var runs atomic.Int32
	slow := func(ctx context.Context) (report.Report, error) {
		runs.Add(1)
		select {
		case <-release:
			return report.Report{Subject: "slow"}, ctx.Err()
		case <-ctx.Done():
			return report.Report{}, ctx.Err()
		}
	}
	impatient, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := srv.cachedScan(impatient, "slow-key", slow); err == nil {
		t.Fatal("a caller that gave up got a result")
	}
	close(release)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		rep, cached, err := srv.cachedScan(ctx, "slow-key", slow)
		if err != nil {
			t.Fatal(err)
		}
		if cached && rep.Subject == "slow" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the abandoned scan's result never reached the cache")
		}
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("the scan ran %d times, want once: the abandoned one went on", n)
	}

	var apiErr *scanapi.Error
	if _, err := client.ScanImage(ctx, registry+"/missing:1"); !errors.As(err, &apiErr) || apiErr.Code != scanapi.CodeImageNotFound || !scanapi.ImageProblem(err) {
		t.Errorf("missing image: %v", err)
	}
	// A refused token is the caller's configuration, not the image's: the
	// gates must treat it as the scanner being unavailable.
	if _, err := (&scanapi.Client{BaseURL: hs.URL}).ScanImage(ctx, image); !errors.As(err, &apiErr) || apiErr.Code != scanapi.CodeUnauthenticated || scanapi.ImageProblem(err) || !strings.Contains(err.Error(), "bearer token") {
		t.Errorf("no token: %v", err)
	}

	sb, err := scan.GenerateSBOM(ctx, scan.Image(image, scan.RegistryOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	var doc bytes.Buffer
	if err := scan.EncodeSBOM(&doc, sb, scan.FormatCycloneDXJSON); err != nil {
		t.Fatal(err)
	}
	rep, err = client.ScanSBOM(ctx, bytes.NewReader(doc.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rep.SBOMDigest, "sha256:") || len(rep.Findings) != 1 || rep.Findings[0].ID != scantest.GoVulnID {
		t.Errorf("SBOM report = %+v, want the digest and %s", rep, scantest.GoVulnID)
	}
	if _, err := client.ScanSBOM(ctx, strings.NewReader(`{"not":"an sbom"}`)); !errors.As(err, &apiErr) || apiErr.Code != scanapi.CodeInvalidSBOM || !scanapi.ImageProblem(err) {
		t.Errorf("invalid SBOM: %v", err)
	}

	empty := scan.NewScanner(scan.Options{DBDir: t.TempDir()})
	noDB, err := New(Options{Scanner: empty, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	hs2 := httptest.NewServer(noDB.Handler())
	t.Cleanup(hs2.Close)
	if _, err := (&scanapi.Client{BaseURL: hs2.URL}).ScanImage(ctx, image); !errors.As(err, &apiErr) || apiErr.Code != scanapi.CodeNoDatabase || scanapi.ImageProblem(err) {
		t.Errorf("no database: %v", err)
	}
	resp, err := http.Get(hs2.URL + scanapi.HealthPath)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("health without a database = %d, want 503", resp.StatusCode)
	}
}
