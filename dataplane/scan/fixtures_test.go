package scan

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/anchore/syft/syft/pkg"
	"github.com/anchore/syft/syft/sbom"

	"github.com/cairn-platform/cairn/dataplane/scan/report"
	"github.com/cairn-platform/cairn/dataplane/scan/scantest"
)

var (
	archiveOnce sync.Once
	archivePath string
	archiveDir  string
)

// testArchive builds the planted DB archive once per test process (in a
// directory outliving individual tests).
func testArchive(t testing.TB) string {
	t.Helper()
	archiveOnce.Do(func() {
		dir, err := os.MkdirTemp("", "scan-test-db-")
		if err != nil {
			t.Fatal(err)
		}
		archiveDir = dir
		scantest.BuildDB(t, dir, scantest.DefaultVulns())
		archivePath = packageInto(t, dir)
	})
	if archivePath == "" {
		t.Fatal("test DB archive could not be built (see earlier failure)")
	}
	return archivePath
}

// packageInto is scantest.PackageDB with the archive kept outside the
// calling test's TempDir so it can be shared.
func packageInto(t testing.TB, dir string) string {
	src := scantest.PackageDB(t, dir)
	dst := filepath.Join(dir, filepath.Base(src))
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestMain(m *testing.M) {
	code := m.Run()
	if archiveDir != "" {
		_ = os.RemoveAll(archiveDir)
	}
	os.Exit(code)
}

// importedDB returns a fresh DB directory with the planted DB imported.
func importedDB(t testing.TB) string {
	t.Helper()
	dbDir := t.TempDir()
	if err := ImportDB(t.Context(), testArchive(t), dbDir); err != nil {
		t.Fatalf("ImportDB: %v", err)
	}
	return dbDir
}

func hasPackage(s *sbom.SBOM, name, version string, typ pkg.Type) bool {
	for _, p := range s.Artifacts.Packages.Sorted() {
		if p.Name == name && p.Version == version && p.Type == typ {
			return true
		}
	}
	return false
}

func packageList(s *sbom.SBOM) []string {
	var out []string
	for _, p := range s.Artifacts.Packages.Sorted() {
		out = append(out, string(p.Type)+":"+p.Name+"@"+p.Version)
	}
	return out
}

func findingByID(r report.Report, id string) (report.Finding, bool) {
	i := slices.IndexFunc(r.Findings, func(f report.Finding) bool { return f.ID == id })
	if i < 0 {
		return report.Finding{}, false
	}
	return r.Findings[i], true
}

// key reduces findings to what must agree between an image scan and a
// scan of its SBOM.
func keys(r report.Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.ID+" "+f.Severity.String()+" "+f.Type+":"+f.Package+"@"+f.Version+" fix="+join(f.FixedIn))
	}
	return out
}

func join(ss []string) string {
	var b bytes.Buffer
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s)
	}
	return b.String()
}
