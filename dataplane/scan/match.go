package scan

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/anchore/grype/grype"
	"github.com/anchore/grype/grype/distro"
	"github.com/anchore/grype/grype/match"
	"github.com/anchore/grype/grype/matcher"
	"github.com/anchore/grype/grype/matcher/golang"
	"github.com/anchore/grype/grype/matcher/stock"
	grypepkg "github.com/anchore/grype/grype/pkg"
	"github.com/anchore/syft/syft/format/syftjson"
	"github.com/anchore/syft/syft/sbom"

	"github.com/cairn-platform/cairn/dataplane/scan/report"
)

// Match finds the vulnerabilities in db that affect the packages in s.
//
// The SBOM goes through grype's own SBOM reader (as syft JSON) rather than
// a hand-rolled conversion: that is the path grype's CLI uses for
// `grype sbom:…`, so distro detection, file-ownership overlap removal and
// fix channels behave exactly as upstream, and an SBOM file scanned later
// yields the same findings as the image it came from.
func Match(ctx context.Context, db *DB, s *sbom.SBOM) (report.Report, error) {
	if db == nil {
		return report.Report{}, fmt.Errorf("match: %w: nil DB", ErrNoDB)
	}
	if s == nil {
		return report.Report{}, fmt.Errorf("match: nil SBOM")
	}
	var buf bytes.Buffer
	if err := syftjson.NewFormatEncoder().Encode(&buf, *s); err != nil {
		return report.Report{}, fmt.Errorf("match: encode SBOM: %w", err)
	}
	r, _, err := matchReader(ctx, db, bytes.NewReader(buf.Bytes()))
	return r, err
}

// matchReader matches a serialized SBOM (any format grype reads) and also
// returns the decoded SBOM.
func matchReader(ctx context.Context, db *DB, rd io.ReadSeeker) (report.Report, *sbom.SBOM, error) {
	pkgs, pctx, s, err := grypepkg.ProvideFromReader(rd, grypepkg.ProviderConfig{
		SynthesisConfig: grypepkg.SynthesisConfig{
			Distro: grypepkg.DistroConfig{FixChannels: distro.DefaultFixChannels()},
		},
	})
	if err != nil {
		return report.Report{}, nil, fmt.Errorf("match: read SBOM: %w: %w", ErrInvalidSBOM, err)
	}
	vm := grype.VulnerabilityMatcher{
		VulnerabilityProvider: db.provider,
		Matchers:              defaultMatchers(),
	}
	matches, _, err := vm.FindMatchesContext(ctx, pkgs, pctx)
	if err != nil {
		return report.Report{}, nil, fmt.Errorf("match: %w", err)
	}
	r := report.Report{
		DBBuilt:  db.built,
		DBSchema: db.schema,
		Packages: len(pkgs),
	}
	if s != nil {
		r.Subject = subjectOf(s)
		r.Packages = s.Artifacts.Packages.PackageCount()
	}
	r.Findings = make([]report.Finding, 0, matches.Count())
	for _, m := range matches.Sorted() {
		r.Findings = append(r.Findings, toFinding(m))
	}
	report.SortFindings(r.Findings)
	return r, s, nil
}

// defaultMatchers mirrors grype's CLI defaults: CPE matching only for the
// stock matcher and the Go standard library, where package-native data is
// thin.
func defaultMatchers() []match.Matcher {
	return matcher.NewDefaultMatchers(matcher.Config{
		Golang: golang.MatcherConfig{AlwaysUseCPEForStdlib: true},
		Stock:  stock.MatcherConfig{UseCPEs: true},
	})
}

// toFinding converts one grype match. Grype v6 attaches the vulnerability's
// metadata (severity, description, URLs) to each match.
func toFinding(m match.Match) report.Finding {
	v := m.Vulnerability
	f := report.Finding{
		ID:      v.ID,
		Package: m.Package.Name,
		Version: m.Package.Version,
		Type:    string(m.Package.Type),
		FixedIn: slices.Clone(v.Fix.Versions),
	}
	if md := v.Metadata; md != nil {
		f.Severity, _ = report.ParseSeverity(md.Severity)
		f.Description = md.Description
		if md.DataSource != "" {
			f.URLs = append(f.URLs, md.DataSource)
		}
		for _, u := range md.URLs {
			if !slices.Contains(f.URLs, u) {
				f.URLs = append(f.URLs, u)
			}
		}
	}
	if locs := m.Package.Locations.ToSlice(); len(locs) > 0 {
		f.Location = locs[0].RealPath
	}
	return f
}

// subjectOf names what an SBOM describes: the image reference the user
// gave, or the directory path.
func subjectOf(s *sbom.SBOM) string {
	if s.Source.Name != "" {
		return s.Source.Name
	}
	return s.Source.ID
}
