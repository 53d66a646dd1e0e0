// Package scanapi is the small HTTP interface between the manager and the
// scanner service (cmd/scanner): the wire types and a client. Like
// dataplane/scan/report it imports nothing heavy, so the manager can ask
// for scans without linking syft and grype.
package scanapi

import (
	"github.com/cairn-platform/cairn/dataplane/scan/report"
)

// Paths served by the scanner.
const (
	// ScanImagePath takes a ScanImageRequest and answers a report.Report.
	ScanImagePath = "/v1/scan/image"
	// ScanSBOMPath takes an SBOM document (CycloneDX, SPDX or syft JSON) as
	// the body and answers a report.Report whose SBOMDigest is its sha256.
	ScanSBOMPath = "/v1/scan/sbom"
	// HealthPath answers 200 when a vulnerability database is loaded.
	HealthPath = "/healthz"
)

// ScanImageRequest asks for an image to be catalogued and matched.
type ScanImageRequest struct {
	// Image is a reference by tag or digest; the report names the digest
	// that was scanned.
	Image string `json:"image"`
}

// Error codes the scanner answers with, so callers can tell a problem of
// the image (fix the manifest) from one of the scanner (retry).
const (
	CodeBadRequest = "BadRequest"
	// CodeUnauthenticated: the caller's bearer token was refused (a
	// problem of the caller's configuration, not of what it scans).
	CodeUnauthenticated = "Unauthenticated"
	CodeInvalidSBOM     = "InvalidSBOM"
	CodeImageNotFound   = "ImageNotFound"
	CodeUnauthorized    = "Unauthorized"
	CodeNoDatabase      = "NoDatabase"
	CodeScanFailed      = "ScanFailed"
)

// ErrorResponse is the body of a non-200 answer.
type ErrorResponse struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ScanImageResponse is the body of a 200 answer.
type ScanImageResponse = report.Report
