// Package scangate holds what every scan gate (GitRepo images, Firmware
// and Function SBOMs) shares: the scanner interface, the mapping of the
// API's ScanPolicy to report.Policy, and the status summary of a verdict.
// It is light: the scanning itself happens in the scanner service.
package scangate

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/scan/report"
	"github.com/cairn-platform/cairn/dataplane/scan/scanapi"
)

// Scanner is what the gates need from the scanner service;
// scanapi.Client implements it.
type Scanner interface {
	ScanImage(ctx context.Context, image string) (report.Report, error)
	ScanSBOM(ctx context.Context, sbom io.Reader) (report.Report, error)
}

// Condition reasons the gates share.
const (
	// ReasonScanBlocked: findings the scanPolicy does not allow.
	ReasonScanBlocked = "ScanBlocked"
	// ReasonScanFailed: what was to be scanned cannot be (an image missing
	// or unreadable, an SBOM that does not parse); the object must change.
	ReasonScanFailed = "ScanFailed"
	// ReasonScanUnavailable: no scanner configured, or it failed; retried.
	ReasonScanUnavailable = "ScanUnavailable"
)

// ErrNoScanner is returned when a scanPolicy is set but the manager has
// no scanner: the gate fails closed.
var ErrNoScanner = fmt.Errorf("a scanPolicy is set but the manager has no scanner (--scanner-url); nothing is deployed unscanned")

// MaxBlockingListed bounds ScanResult.Blocking.
const MaxBlockingListed = 20

// Policy converts the API's ScanPolicy.
func Policy(sp *common.ScanPolicy) report.Policy {
	var p report.Policy
	if sp == nil {
		return p
	}
	if sp.FailOn != nil {
		// The CRD's enum is the report package's names; an unparsable value
		// cannot pass admission, and Unknown would mean "never block".
		p.FailOn, _ = report.ParseSeverity(string(*sp.FailOn))
	}
	for _, ig := range sp.Ignore {
		e := report.Ignore{ID: ig.ID, Reason: ig.Reason}
		if ig.Until != nil {
			e.Until = &ig.Until.Time
		}
		p.Ignore = append(p.Ignore, e)
	}
	return p
}

// Result summarises a report and its verdict for status.
func Result(rep report.Report, v report.Verdict) common.ScanResult {
	s := common.ScanResult{Digest: rep.Digest}
	if s.Digest == "" {
		s.Digest = rep.SBOMDigest
	}
	if !rep.DBBuilt.IsZero() {
		s.DBBuilt = &metav1.Time{Time: rep.DBBuilt}
	}
	for _, f := range rep.Findings {
		if s.Findings == nil {
			s.Findings = map[string]int{}
		}
		s.Findings[f.Severity.String()]++
	}
	for _, f := range v.Blocking[:min(len(v.Blocking), MaxBlockingListed)] {
		s.Blocking = append(s.Blocking, fmt.Sprintf("%s (%s) in %s %s", f.ID, f.Severity, f.Package, f.Version))
	}
	for _, f := range v.Ignored {
		if !slices.Contains(s.Ignored, f.ID) {
			s.Ignored = append(s.Ignored, f.ID)
		}
	}
	return s
}

// Reason tells a subject the scanner cannot read (the object must change)
// from a scanner that is missing or down (wait).
func Reason(err error) string {
	if scanapi.ImageProblem(err) {
		return ReasonScanFailed
	}
	return ReasonScanUnavailable
}

// ShortDigest abbreviates "sha256:<64 hex>" to 12 hex digits for messages.
func ShortDigest(d string) string {
	if d == "" {
		return "digest unknown"
	}
	if algo, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return algo + ":" + hex[:12]
	}
	return d
}
