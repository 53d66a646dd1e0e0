package scantest

import (
	"strings"
	"testing"
	"time"

	v6 "github.com/anchore/grype/grype/db/v6"
)

// PlantedVuln is one made-up vulnerability to write into a test DB.
type PlantedVuln struct {
	ID          string
	Severity    string // "high", "critical", …
	Description string
	// Ecosystem is the syft package type: "apk", "go-module", …
	Ecosystem string
	Package   string
	// VersionType is grype's version format for Constraint: "apk", "go", …
	VersionType string
	// Constraint is the affected range, e.g. "< 1.2.5-r0".
	Constraint string
	FixedIn    string
	// OS scopes distro packages (apk, deb); nil for language packages.
	OS *OS
}

// OS is a distro release as grype stores it.
type OS struct {
	Name         string // "alpine"
	MajorVersion string // "3"
	MinorVersion string // "20"
}

// Planted IDs in DefaultVulns.
const (
	APKVulnID = "CVE-2099-0001"
	GoVulnID  = "CVE-2099-0002"
)

// DefaultVulns plants one High CVE in the fixture's apk package for Alpine
// 3.20 (fixed in FixedAPKVersion) and one Medium CVE in the fixture's Go
// module (affecting DefaultGoModuleVersion, fixed in v1.6.1).
func DefaultVulns() []PlantedVuln {
	return []PlantedVuln{
		{
			ID: APKVulnID, Severity: "high", Description: "planted apk test vulnerability",
			Ecosystem: "apk", Package: DefaultAPKPackage, VersionType: "apk",
			Constraint: "< " + FixedAPKVersion, FixedIn: FixedAPKVersion,
			OS: &OS{Name: "alpine", MajorVersion: "3", MinorVersion: "20"},
		},
		{
			ID: GoVulnID, Severity: "medium", Description: "planted go module test vulnerability",
			Ecosystem: "go-module", Package: DefaultGoModule, VersionType: "go",
			Constraint: "< 1.6.1", FixedIn: "1.6.1",
		},
	}
}

// BuildDB writes a grype v6 database with vulns into dir (as
// dir/vulnerability.db, the layout inside a published archive) using
// grype's own writer, then hydrates it (builds indexes) as an import would.
func BuildDB(t testing.TB, dir string, vulns []PlantedVuln) {
	t.Helper()
	w, err := v6.NewWriter(v6.Config{DBDirPath: dir})
	if err != nil {
		t.Fatalf("scantest: open DB writer: %v", err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	prov := &v6.Provider{ID: "cairn-scantest", Version: "1", Processor: "scantest", DateCaptured: &now, InputDigest: "sha256:0"}
	for _, pv := range vulns {
		vh := &v6.VulnerabilityHandle{
			Name:          pv.ID,
			Status:        v6.VulnerabilityActive,
			ProviderID:    prov.ID,
			Provider:      prov,
			PublishedDate: &now,
			BlobValue: &v6.VulnerabilityBlob{
				ID:          pv.ID,
				Description: pv.Description,
				References:  []v6.Reference{{URL: "https://example.invalid/" + strings.ToLower(pv.ID)}},
				Severities:  []v6.Severity{{Scheme: v6.SeveritySchemeCHMLN, Value: strings.ToLower(pv.Severity), Rank: 1}},
			},
		}
		if err := w.AddVulnerabilities(vh); err != nil {
			t.Fatalf("scantest: add %s: %v", pv.ID, err)
		}
		aph := &v6.AffectedPackageHandle{
			VulnerabilityID: vh.ID,
			Package:         &v6.Package{Ecosystem: pv.Ecosystem, Name: pv.Package},
			BlobValue: &v6.PackageBlob{
				CVEs: []string{pv.ID},
				Ranges: []v6.Range{{
					Version: v6.Version{Type: pv.VersionType, Constraint: pv.Constraint},
					Fix:     &v6.Fix{Version: pv.FixedIn, State: v6.FixedStatus},
				}},
			},
		}
		if pv.OS != nil {
			aph.OperatingSystem = &v6.OperatingSystem{
				Name: pv.OS.Name, ReleaseID: pv.OS.Name,
				MajorVersion: pv.OS.MajorVersion, MinorVersion: pv.OS.MinorVersion,
			}
		}
		if err := w.AddAffectedPackages(aph); err != nil {
			t.Fatalf("scantest: add affected package for %s: %v", pv.ID, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("scantest: close DB writer: %v", err)
	}
	if err := v6.Hydrater()(dir); err != nil {
		t.Fatalf("scantest: hydrate DB: %v", err)
	}
}
