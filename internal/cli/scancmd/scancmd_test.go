package scancmd

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/cairn-platform/cairn/dataplane/scan/scantest"
)

func run(t *testing.T, cmd *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestSBOMAndScan runs the commands against a real registry on loopback and
// a grype v6 database with planted vulnerabilities, imported from an archive.
func TestSBOMAndScan(t *testing.T) {
	registry := scantest.StartRegistry(t)
	scantest.Push(t, registry, "shop/app:1", scantest.BuildImage(t, scantest.ImageOptions{}))
	image := registry + "/shop/app:1"
	dbBuild := t.TempDir()
	scantest.BuildDB(t, dbBuild, scantest.DefaultVulns())
	archive := scantest.PackageDB(t, dbBuild)
	dbDir := t.TempDir()

	sbomFile := filepath.Join(t.TempDir(), "app.spdx.json")
	t.Run("sbom of an image as SPDX", func(t *testing.T) {
		if out, err := run(t, NewSBOMCommand(), image, "-o", "spdx-json", "--output-file", sbomFile); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		data, err := os.ReadFile(sbomFile)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			SPDXVersion string `json:"spdxVersion"`
			Packages    []struct {
				Name, VersionInfo string
			} `json:"packages"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		found := map[string]string{}
		for _, p := range doc.Packages {
			found[p.Name] = p.VersionInfo
		}
		if !strings.HasPrefix(doc.SPDXVersion, "SPDX-") || found["musl"] != scantest.VulnerableAPKVersion || found[scantest.DefaultGoModule] != scantest.DefaultGoModuleVersion {
			t.Errorf("SPDX %s packages %v lack musl %s and %s %s", doc.SPDXVersion, found, scantest.VulnerableAPKVersion, scantest.DefaultGoModule, scantest.DefaultGoModuleVersion)
		}
	})

	t.Run("sbom of a directory as CycloneDX", func(t *testing.T) {
		dir := t.TempDir()
		for _, f := range scantest.Files(t, scantest.ImageOptions{NoGoBinary: true}) {
			p := filepath.Join(dir, f.Path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, err := run(t, NewSBOMCommand(), dir)
		if err != nil || !strings.Contains(out, `"bomFormat": "CycloneDX"`) && !strings.Contains(out, `"bomFormat":"CycloneDX"`) || !strings.Contains(out, "musl") {
			t.Errorf("err = %v, CycloneDX output lacks musl:\n%.500s", err, out)
		}
	})

	t.Run("scan blocks at the threshold", func(t *testing.T) {
		out, err := run(t, NewScanCommand(), "--db-dir", dbDir, "--db-import", archive, image, "--fail-on", "HIGH")
		if err == nil || !strings.Contains(err.Error(), scantest.APKVulnID) {
			t.Fatalf("err = %v, want a failure naming %s\n%s", err, scantest.APKVulnID, out)
		}
		for _, want := range []string{scantest.APKVulnID, scantest.GoVulnID, "High", "Medium", scantest.FixedAPKVersion} {
			if !strings.Contains(out, want) {
				t.Errorf("table lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("ignored finding passes", func(t *testing.T) {
		out, err := run(t, NewScanCommand(), "--db-dir", dbDir, image, "--fail-on", "high", "--ignore", scantest.APKVulnID)
		if err != nil || !strings.Contains(out, scantest.APKVulnID+" (ignored)") {
			t.Errorf("err = %v\n%s", err, out)
		}
		if _, err := run(t, NewScanCommand(), "--db-dir", dbDir, image, "--fail-on", "medium", "--ignore", scantest.APKVulnID); err == nil || !strings.Contains(err.Error(), scantest.GoVulnID) {
			t.Errorf("medium threshold: err = %v, want %s", err, scantest.GoVulnID)
		}
	})

	t.Run("scan of the SBOM file finds the same", func(t *testing.T) {
		out, err := run(t, NewScanCommand(), "--db-dir", dbDir, sbomFile, "-o", "json")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var got struct {
			Findings []struct{ ID string }  `json:"findings"`
			Verdict  struct{ Blocked bool } `json:"verdict"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		ids := map[string]bool{}
		for _, f := range got.Findings {
			ids[f.ID] = true
		}
		if !ids[scantest.APKVulnID] || !ids[scantest.GoVulnID] || got.Verdict.Blocked {
			t.Errorf("findings %v, blocked %v; want both planted IDs, not blocked without --fail-on", ids, got.Verdict.Blocked)
		}
	})

	t.Run("clear errors", func(t *testing.T) {
		if _, err := run(t, NewScanCommand(), "--db-dir", dbDir, image, "--fail-on", "severe"); err == nil || !strings.Contains(err.Error(), "--fail-on") {
			t.Errorf("bad --fail-on: %v", err)
		}
		if _, err := run(t, NewScanCommand(), "--db-dir", t.TempDir(), image); err == nil || !strings.Contains(err.Error(), "no vulnerability database") {
			t.Errorf("no DB: %v", err)
		}
		if _, err := run(t, NewScanCommand(), "--db-dir", dbDir, registry+"/shop/nothing:1"); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("missing image: %v", err)
		}
		plain := filepath.Join(t.TempDir(), "image.tar")
		if err := os.WriteFile(plain, []byte("not json"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := run(t, NewSBOMCommand(), plain); err == nil || !strings.Contains(err.Error(), "oci-archive:") {
			t.Errorf("a plain file: %v", err)
		}
		if _, err := run(t, NewSBOMCommand(), image, "-o", "xml"); err == nil || !strings.Contains(err.Error(), "cyclonedx-json") {
			t.Errorf("bad format: %v", err)
		}
	})
}
