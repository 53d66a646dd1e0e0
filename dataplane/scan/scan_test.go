package scan

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/anchore/syft/syft/pkg"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/cairn-platform/cairn/dataplane/scan/report"
	"github.com/cairn-platform/cairn/dataplane/scan/scantest"
)

func TestScanVulnerableImage(t *testing.T) {
	host := scantest.StartRegistry(t)
	img := scantest.BuildImage(t, scantest.ImageOptions{})
	digest := scantest.Push(t, host, "cairn/app:vuln", img)
	sc := NewScanner(Options{DBDir: importedDB(t)})
	defer sc.Close()

	ref := host + "/cairn/app:vuln"
	rep, sb, err := sc.ScanImage(t.Context(), ref)
	if err != nil {
		t.Fatalf("ScanImage: %v", err)
	}

	// SBOM: the apk package and the Go module from the binary's build info.
	if !hasPackage(sb, scantest.DefaultAPKPackage, scantest.VulnerableAPKVersion, pkg.ApkPkg) {
		t.Errorf("SBOM lacks apk %s %s; has %v", scantest.DefaultAPKPackage, scantest.VulnerableAPKVersion, packageList(sb))
	}
	if !hasPackage(sb, scantest.DefaultGoModule, scantest.DefaultGoModuleVersion, pkg.GoModulePkg) {
		t.Errorf("SBOM lacks go-module %s %s; has %v", scantest.DefaultGoModule, scantest.DefaultGoModuleVersion, packageList(sb))
	}

	// Report identity.
	if rep.Subject != ref || rep.Digest != digest {
		t.Errorf("Subject/Digest = %q/%q, want %q/%q", rep.Subject, rep.Digest, ref, digest)
	}
	if rep.DBBuilt.IsZero() || rep.Packages < 2 {
		t.Errorf("DBBuilt=%v Packages=%d", rep.DBBuilt, rep.Packages)
	}

	// Findings.
	f, ok := findingByID(rep, scantest.APKVulnID)
	if !ok {
		t.Fatalf("no %s in %v", scantest.APKVulnID, keys(rep))
	}
	want := report.Finding{
		ID: scantest.APKVulnID, Severity: report.High, Package: scantest.DefaultAPKPackage,
		Version: scantest.VulnerableAPKVersion, Type: "apk", FixedIn: []string{scantest.FixedAPKVersion},
		Location: "/lib/apk/db/installed",
	}
	got := f
	got.URLs, got.Description = nil, ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("finding =\n %+v\nwant\n %+v", got, want)
	}
	if f.Description == "" || len(f.URLs) == 0 {
		t.Errorf("finding lacks description/URLs: %+v", f)
	}
	g, ok := findingByID(rep, scantest.GoVulnID)
	if !ok {
		t.Fatalf("no %s in %v", scantest.GoVulnID, keys(rep))
	}
	if g.Severity != report.Medium || g.Package != scantest.DefaultGoModule || g.Type != "go-module" || g.Location != scantest.GoBinaryPath {
		t.Errorf("go finding = %+v", g)
	}
	if rep.Findings[0].ID != scantest.APKVulnID {
		t.Errorf("findings not sorted by severity: %v", keys(rep))
	}

	// Policy on the real report.
	v := report.Evaluate(rep, report.Policy{FailOn: report.High}, rep.DBBuilt)
	if !v.Blocked || !strings.Contains(v.Summary(3), "CVE-2099-0001 (High) in musl 1.2.3-r0, fixed in 1.2.5-r0") {
		t.Errorf("verdict: %s", v.Summary(3))
	}

	// Encodings round-trip and re-scan to the same findings.
	for _, format := range []string{FormatCycloneDXJSON, FormatSPDXJSON, FormatSyftJSON} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := EncodeSBOM(&buf, sb, format); err != nil {
				t.Fatalf("EncodeSBOM: %v", err)
			}
			if !json.Valid(buf.Bytes()) {
				t.Fatal("output is not JSON")
			}
			for _, s := range []string{scantest.DefaultAPKPackage, scantest.VulnerableAPKVersion, scantest.DefaultGoModule, scantest.DefaultGoModuleVersion} {
				if !bytes.Contains(buf.Bytes(), []byte(s)) {
					t.Errorf("%s output lacks %q", format, s)
				}
			}
			dec, id, err := DecodeSBOM(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatalf("DecodeSBOM: %v", err)
			}
			if id != format {
				t.Errorf("detected format %q, want %q", id, format)
			}
			if !hasPackage(dec, scantest.DefaultAPKPackage, scantest.VulnerableAPKVersion, pkg.ApkPkg) ||
				!hasPackage(dec, scantest.DefaultGoModule, scantest.DefaultGoModuleVersion, pkg.GoModulePkg) {
				t.Errorf("decoded %s lacks fixture packages: %v", format, packageList(dec))
			}
			rep2, _, err := sc.ScanSBOM(t.Context(), bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatalf("ScanSBOM: %v", err)
			}
			if !reflect.DeepEqual(keys(rep2), keys(rep)) {
				t.Errorf("SBOM scan findings\n %v\nimage scan findings\n %v", keys(rep2), keys(rep))
			}
			if !strings.HasPrefix(rep2.SBOMDigest, "sha256:") {
				t.Errorf("SBOMDigest = %q", rep2.SBOMDigest)
			}
		})
	}
}

func TestScanFixedImage(t *testing.T) {
	host := scantest.StartRegistry(t)
	scantest.Push(t, host, "cairn/app:fixed", scantest.BuildImage(t, scantest.ImageOptions{APKVersion: scantest.FixedAPKVersion}))
	sc := NewScanner(Options{DBDir: importedDB(t)})
	defer sc.Close()
	rep, sb, err := sc.ScanImage(t.Context(), host+"/cairn/app:fixed")
	if err != nil {
		t.Fatalf("ScanImage: %v", err)
	}
	if !hasPackage(sb, scantest.DefaultAPKPackage, scantest.FixedAPKVersion, pkg.ApkPkg) {
		t.Fatalf("SBOM lacks fixed apk package: %v", packageList(sb))
	}
	if f, ok := findingByID(rep, scantest.APKVulnID); ok {
		t.Fatalf("fixed image still reports %+v", f)
	}
}

func TestScanDir(t *testing.T) {
	dir := t.TempDir()
	for _, f := range scantest.Files(t, scantest.ImageOptions{}) {
		p := filepath.Join(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, os.FileMode(f.Mode)); err != nil {
			t.Fatal(err)
		}
	}
	sc := NewScanner(Options{DBDir: importedDB(t)})
	defer sc.Close()
	rep, sb, err := sc.ScanDir(t.Context(), dir)
	if err != nil {
		t.Fatalf("ScanDir: %v", err)
	}
	if !hasPackage(sb, scantest.DefaultGoModule, scantest.DefaultGoModuleVersion, pkg.GoModulePkg) {
		t.Errorf("dir SBOM lacks go module: %v", packageList(sb))
	}
	if _, ok := findingByID(rep, scantest.APKVulnID); !ok {
		t.Errorf("dir scan lacks %s: %v", scantest.APKVulnID, keys(rep))
	}
	if rep.Subject != dir || rep.Digest != "" {
		t.Errorf("Subject/Digest = %q/%q", rep.Subject, rep.Digest)
	}
}

func TestGenerateSBOMFromOCILayout(t *testing.T) {
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	img := scantest.BuildImage(t, scantest.ImageOptions{NoGoBinary: true})
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	sb, err := GenerateSBOM(t.Context(), OCIDir(dir))
	if err != nil {
		t.Fatalf("GenerateSBOM: %v", err)
	}
	if !hasPackage(sb, scantest.DefaultAPKPackage, scantest.VulnerableAPKVersion, pkg.ApkPkg) {
		t.Errorf("OCI layout SBOM lacks apk package: %v", packageList(sb))
	}
}

func TestScanErrors(t *testing.T) {
	const user, pass = "ci", "s3cret"
	host := scantest.StartAuthRegistry(t, user, pass)
	img := scantest.BuildImage(t, scantest.ImageOptions{NoGoBinary: true})
	scantest.Push(t, host, "cairn/private:1", img, &authn.Basic{Username: user, Password: pass})
	dbDir := importedDB(t)
	ref := host + "/cairn/private:1"

	t.Run("no DB", func(t *testing.T) {
		sc := NewScanner(Options{DBDir: t.TempDir()})
		_, _, err := sc.ScanImage(t.Context(), ref)
		if !errors.Is(err, ErrNoDB) || !strings.Contains(err.Error(), "ImportDB") {
			t.Fatalf("err = %v, want ErrNoDB naming ImportDB", err)
		}
		_, _, err = sc.ScanSBOM(t.Context(), strings.NewReader("{}"))
		if !errors.Is(err, ErrNoDB) {
			t.Fatalf("ScanSBOM err = %v, want ErrNoDB", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		sc := NewScanner(Options{DBDir: dbDir, Registry: RegistryOptions{Username: user, Password: "nope"}})
		defer sc.Close()
		_, _, err := sc.ScanImage(t.Context(), ref)
		if !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("err = %v, want ErrUnauthorized", err)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		sc := NewScanner(Options{DBDir: dbDir})
		defer sc.Close()
		_, _, err := sc.ScanImage(t.Context(), ref)
		if !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("err = %v, want ErrUnauthorized", err)
		}
	})
	t.Run("unknown image", func(t *testing.T) {
		sc := NewScanner(Options{DBDir: dbDir, Registry: RegistryOptions{Username: user, Password: pass}})
		defer sc.Close()
		_, _, err := sc.ScanImage(t.Context(), host+"/cairn/missing:1")
		if !errors.Is(err, ErrImageNotFound) {
			t.Fatalf("err = %v, want ErrImageNotFound", err)
		}
		_, _, err = sc.ScanImage(t.Context(), host+"/cairn/private:nosuchtag")
		if !errors.Is(err, ErrImageNotFound) {
			t.Fatalf("unknown tag err = %v, want ErrImageNotFound", err)
		}
	})
	t.Run("password", func(t *testing.T) {
		sc := NewScanner(Options{DBDir: dbDir, Registry: RegistryOptions{Username: user, Password: pass}})
		defer sc.Close()
		rep, _, err := sc.ScanImage(t.Context(), ref)
		if err != nil {
			t.Fatalf("ScanImage: %v", err)
		}
		if _, ok := findingByID(rep, scantest.APKVulnID); !ok {
			t.Errorf("authenticated scan lacks %s: %v", scantest.APKVulnID, keys(rep))
		}
	})
	t.Run("docker config JSON", func(t *testing.T) {
		cfg := `{"auths":{"` + host + `":{"auth":"` + basic(user, pass) + `"}}}`
		sc := NewScanner(Options{DBDir: dbDir, Registry: RegistryOptions{DockerConfigJSON: []byte(cfg)}})
		defer sc.Close()
		if _, _, err := sc.ScanImage(t.Context(), ref); err != nil {
			t.Fatalf("ScanImage with docker config: %v", err)
		}
	})
}

// TestConcurrentScans shares one Scanner (and the process-wide syft
// licence scanner) between parallel scans, as the scanner service does,
// and reloads the database meanwhile, as its mirror loop does.
func TestConcurrentScans(t *testing.T) {
	host := scantest.StartRegistry(t)
	scantest.Push(t, host, "cairn/app:conc", scantest.BuildImage(t, scantest.ImageOptions{}))
	sc := NewScanner(Options{DBDir: importedDB(t)})
	defer sc.Close()
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			rep, _, err := sc.ScanImage(t.Context(), host+"/cairn/app:conc")
			if err == nil {
				if _, ok := findingByID(rep, scantest.APKVulnID); !ok {
					err = errors.New("missing planted finding: " + strings.Join(keys(rep), "; "))
				}
			}
			errs <- err
		}()
	}
	// A database update reloads while scans run: they finish on the old one.
	for range 3 {
		if err := sc.Reload(); err != nil {
			t.Error(err)
		}
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
