package edge

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/ota/tuf"
	"github.com/cairn-platform/cairn/dataplane/scan/report"
	"github.com/cairn-platform/cairn/internal/conditions"
	"github.com/cairn-platform/cairn/internal/kube"
	"github.com/cairn-platform/cairn/internal/scangate"
)

// Reasons of the SBOM checks.
const (
	ReasonSBOMNotFound  = "SBOMNotFound"
	ReasonSBOMNotSigned = "SBOMNotSigned"
	ReasonSBOMMismatch  = "SBOMMismatch"
)

const (
	// maxSBOMBytes bounds an SBOM after decompression.
	maxSBOMBytes = 64 << 20
	// rescanInterval is how long a scan of one SBOM is reused: the scanner's
	// database changes, the SBOM (pinned by signature) does not.
	rescanInterval = 6 * time.Hour
	// scanRetry is how soon a scan that could not run is retried.
	scanRetry = 30 * time.Second
)

// scanEntry is the last scan of a Firmware's SBOM.
type scanEntry struct {
	digest string
	report report.Report
	at     time.Time
}

// loadSBOM reads spec.sbom and checks it against the digest signed into
// the TUF target, so the document a scan judges is the release's own.
func (r *FirmwareReconciler) loadSBOM(ctx context.Context, fw *edgev1alpha1.Firmware, target tuf.TargetFile) ([]byte, string, string, error) {
	ref := fw.Spec.SBOM
	raw, problem, err := kube.ConfigMapKey(ctx, r.Client, fw.Namespace, ref.Name, ref.Key)
	if err != nil || problem != "" {
		return nil, ReasonSBOMNotFound, "sbom: " + problem + " (cairn firmware publish --sbom writes it)", err
	}
	doc := raw
	if strings.HasSuffix(ref.Key, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			doc, err = io.ReadAll(io.LimitReader(zr, maxSBOMBytes+1))
		}
		if err != nil || len(doc) > maxSBOMBytes {
			return nil, ReasonSBOMMismatch, fmt.Sprintf("sbom: ConfigMap %q key %q is not a gzip stream of at most %d bytes", ref.Name, ref.Key, maxSBOMBytes), nil
		}
	}
	meta, err := target.Firmware()
	if err != nil || meta.SBOM == nil {
		return nil, ReasonSBOMNotSigned, fmt.Sprintf("sbom: target %q was signed without an SBOM digest; sign the image again with cairn firmware sign --sbom", fw.Spec.Metadata.Target), nil
	}
	sum := sha256.Sum256(doc)
	if got := hex.EncodeToString(sum[:]); int64(len(doc)) != meta.SBOM.Length || !strings.EqualFold(got, meta.SBOM.SHA256) {
		return nil, ReasonSBOMMismatch, fmt.Sprintf("sbom: ConfigMap %q key %q is %d bytes with sha256 %s, but the signed target says %d bytes with sha256 %s",
			ref.Name, ref.Key, len(doc), got, meta.SBOM.Length, meta.SBOM.SHA256), nil
	}
	return doc, "", "", nil
}

// gate scans the SBOM (reusing a recent scan of the same document) and
// judges it with spec.scanPolicy. gated means the rollout must not go on:
// findings block it, or no scan could be made (the gate fails closed).
// Devices already assigned the image are not called back.
func (r *FirmwareReconciler) gate(ctx context.Context, fw, base *edgev1alpha1.Firmware, sbom []byte) (ctrl.Result, bool) {
	conds, gen := &fw.Status.Conditions, fw.Generation
	stop := func(reason, msg string, retry time.Duration) (ctrl.Result, bool) {
		conditions.False(conds, gen, ConditionProgressing, reason, msg)
		conditions.False(conds, gen, common.ConditionReady, reason, msg)
		if c := meta.FindStatusCondition(base.Status.Conditions, ConditionProgressing); c == nil || c.Reason != reason || c.ObservedGeneration != gen {
			kube.Warn(r.Recorder, fw, reason, "Scan", msg)
		}
		return ctrl.Result{RequeueAfter: retry}, true
	}
	rep, err := r.scan(ctx, fw, sbom)
	if err != nil {
		return stop(scangate.Reason(err), fmt.Sprintf("the SBOM could not be scanned, no device is updated: %v", err), scanRetry)
	}
	v := report.Evaluate(rep, scangate.Policy(fw.Spec.ScanPolicy), r.now())
	result := scangate.Result(rep, v)
	fw.Status.Scan = &result
	if v.Blocked {
		return stop(scangate.ReasonScanBlocked, fmt.Sprintf("rollout blocked by scanPolicy, no device is assigned the image: %s", v.Summary(3)), rescanInterval)
	}
	return ctrl.Result{}, false
}

func (r *FirmwareReconciler) scan(ctx context.Context, fw *edgev1alpha1.Firmware, sbom []byte) (report.Report, error) {
	if r.Scanner == nil {
		return report.Report{}, scangate.ErrNoScanner
	}
	sum := sha256.Sum256(sbom)
	digest := hex.EncodeToString(sum[:])
	key := types.NamespacedName{Namespace: fw.Namespace, Name: fw.Name}
	if e, ok := r.scans.Load(key); ok {
		if e := e.(scanEntry); e.digest == digest && r.now().Sub(e.at) < rescanInterval {
			return e.report, nil
		}
	}
	rep, err := r.Scanner.ScanSBOM(ctx, bytes.NewReader(sbom))
	if err != nil {
		return rep, err
	}
	r.scans.Store(key, scanEntry{digest: digest, report: rep, at: r.now()})
	return rep, nil
}
