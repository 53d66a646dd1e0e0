package report

import "time"

// Finding is one vulnerability matched against one package.
type Finding struct {
	// ID is the vulnerability identifier, e.g. "CVE-2099-0001" or "GHSA-…".
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Package and Version name the affected package as catalogued.
	Package string `json:"package"`
	Version string `json:"version"`
	// Type is the package ecosystem as syft names it: apk, deb, go-module, …
	Type string `json:"type"`
	// FixedIn lists versions that fix the vulnerability; empty when no fix
	// is known.
	FixedIn []string `json:"fixedIn,omitempty"`
	// Location is where the package was found inside the image or
	// directory (e.g. /lib/apk/db/installed or /usr/bin/app).
	Location    string   `json:"location,omitempty"`
	URLs        []string `json:"urls,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Report is the outcome of scanning one subject against one vulnerability
// database.
type Report struct {
	// Subject is what was scanned: an image reference or a directory.
	Subject string `json:"subject"`
	// Digest is the image manifest digest when the subject is an image, so a
	// verdict is tied to exact content rather than to a moving tag.
	Digest string `json:"digest,omitempty"`
	// DBBuilt and DBSchema identify the vulnerability database used; a
	// verdict is only as fresh as DBBuilt.
	DBBuilt  time.Time `json:"dbBuilt"`
	DBSchema string    `json:"dbSchema,omitempty"`
	// Packages is how many packages were catalogued.
	Packages int       `json:"packages"`
	Findings []Finding `json:"findings"`
	// SBOMDigest is the sha256 of the SBOM the findings were computed from,
	// when the caller stored one.
	SBOMDigest string `json:"sbomDigest,omitempty"`
}
