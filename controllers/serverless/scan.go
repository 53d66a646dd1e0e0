package serverless

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/scan/report"
	"github.com/cairn-platform/cairn/internal/kube"
	"github.com/cairn-platform/cairn/internal/scangate"
)

// Reasons of the scan gate, on Accepted and Ready.
const (
	// ReasonSBOMNotFound: spec.sbom names a ConfigMap or key that does not
	// exist.
	ReasonSBOMNotFound = "SBOMNotFound"
	// ReasonScanBlocked, ReasonScanFailed and ReasonScanUnavailable are
	// scangate's: findings the scanPolicy does not allow; an SBOM the
	// scanner cannot read; no scanner, or a failing one (retried).
	ReasonScanBlocked     = scangate.ReasonScanBlocked
	ReasonScanFailed      = scangate.ReasonScanFailed
	ReasonScanUnavailable = scangate.ReasonScanUnavailable
)

// Timing of the scan gate.
const (
	// DefaultRescanInterval is how often an unchanged SBOM is scanned
	// again: the vulnerability database is updated meanwhile.
	DefaultRescanInterval = 6 * time.Hour
	// scanRetry is how soon a scanner that is missing or failing is asked
	// again.
	scanRetry = 30 * time.Second
)

// scanned remembers the last decision of the gate for a Function, so the
// reconciles the hosts' status reports trigger do not each ask the scanner.
type scanned struct {
	generation         int64
	module, sbomDigest string
	at                 time.Time
	result             *common.ScanResult
	reason, problem    string
	passed             string
}

// gateOutcome is the gate's decision for one Function's module.
type gateOutcome struct {
	// result is the scan to record in status (nil: keep the one there).
	result *common.ScanResult
	// reason and problem say why the module must not be loaded; empty when
	// it may be.
	reason, problem string
	// passed sums up a passing scan for the Accepted message.
	passed string
	// requeue is when to decide again.
	requeue time.Duration
	// keepServing: the scanner is unavailable for an SBOM, module and
	// generation that passed before; the module keeps being served and
	// the scan is retried (problem is set, for the Event).
	keepServing bool
}

// scanGate decides whether fn's module, resolved to moduleDigest, may be
// loaded under its scanPolicy, from the scan of the SBOM spec.sbom names.
// An error is a failure to read the cluster (retried by the caller).
func (r *FunctionReconciler) scanGate(ctx context.Context, fn *serverlessv1alpha1.Function, moduleDigest string) (gateOutcome, error) {
	ref := fn.Spec.SBOM
	if ref == nil {
		// Admission refuses a scanPolicy without an SBOM; fail closed anyway.
		return gateOutcome{reason: ReasonSBOMNotFound, problem: "scanPolicy needs spec.sbom: wasm modules carry no package list to scan"}, nil
	}
	sbom, problem, err := readSBOM(ctx, r.Client, fn.Namespace, ref)
	if err != nil {
		return gateOutcome{}, err
	}
	if problem != "" {
		return gateOutcome{reason: ReasonSBOMNotFound, problem: problem}, nil
	}
	sum := sha256.Sum256(sbom)
	sbomDigest := "sha256:" + hex.EncodeToString(sum[:])
	interval := r.RescanInterval
	if interval <= 0 {
		interval = DefaultRescanInterval
	}
	key := client.ObjectKeyFromObject(fn)
	if v, ok := r.scans.Load(key); ok && fn.Status.Scan != nil {
		last := v.(scanned)
		if since := time.Since(last.at); last.generation == fn.Generation && last.module == moduleDigest && last.sbomDigest == sbomDigest && since < interval {
			return gateOutcome{result: last.result, reason: last.reason, problem: last.problem, passed: last.passed, requeue: interval - since}, nil
		}
	}
	what := fmt.Sprintf("the SBOM %s/%s (%s) of module %s", ref.Name, ref.Key, scangate.ShortDigest(sbomDigest), scangate.ShortDigest(moduleDigest))
	if r.Scanner == nil {
		return r.unavailable(fn, moduleDigest, sbomDigest, fmt.Sprintf("cannot scan %s: %v", what, scangate.ErrNoScanner)), nil
	}
	rep, err := r.Scanner.ScanSBOM(ctx, bytes.NewReader(sbom))
	if err != nil {
		if ctx.Err() != nil {
			return gateOutcome{}, ctx.Err()
		}
		msg := fmt.Sprintf("scanning %s: %v", what, err)
		if scangate.Reason(err) == ReasonScanUnavailable {
			return r.unavailable(fn, moduleDigest, sbomDigest, msg), nil
		}
		out := gateOutcome{reason: ReasonScanFailed, problem: msg + "; the function hosts do not load the module", requeue: interval}
		r.scans.Store(key, scanned{generation: fn.Generation, module: moduleDigest, sbomDigest: sbomDigest, at: time.Now(), reason: out.reason, problem: out.problem})
		return out, nil
	}
	out := judge(rep, scangate.Policy(fn.Spec.ScanPolicy), sbomDigest, what, time.Now())
	out.requeue = interval
	r.scans.Store(key, scanned{generation: fn.Generation, module: moduleDigest, sbomDigest: sbomDigest, at: time.Now(), result: out.result, reason: out.reason, problem: out.problem, passed: out.passed})
	return out, nil
}

// judge evaluates a report of what (an SBOM of digest sbomDigest).
func judge(rep report.Report, p report.Policy, sbomDigest, what string, now time.Time) gateOutcome {
	v := report.Evaluate(rep, p, now)
	res := scangate.Result(rep, v)
	// The gate and the hosts compare the SBOM by its bytes' digest.
	res.Digest = sbomDigest
	out := gateOutcome{result: &res}
	if v.Blocked {
		out.reason = ReasonScanBlocked
		out.problem = fmt.Sprintf("%s is blocked by scanPolicy, the function hosts do not load it: %s", what, v.Summary(3))
	} else {
		out.passed = fmt.Sprintf("%s passed scanPolicy: %s", what, v.Summary(3))
	}
	return out
}

// unavailable is the outcome when the scanner cannot answer: fail closed,
// unless this very SBOM, module and generation passed before (the module
// is being served; it keeps serving while the scan is retried).
func (r *FunctionReconciler) unavailable(fn *serverlessv1alpha1.Function, moduleDigest, sbomDigest, msg string) gateOutcome {
	if gatePassed(fn) && fn.Status.Digest == moduleDigest && fn.Status.Scan.Digest == sbomDigest {
		return gateOutcome{reason: ReasonScanUnavailable, problem: msg + "; the last passing scan stands", requeue: scanRetry, keepServing: true}
	}
	return gateOutcome{reason: ReasonScanUnavailable, problem: msg + "; the function hosts do not load the module until it is scanned", requeue: scanRetry}
}

// gatePassed tells whether status records a passing scan for fn's current
// generation: Accepted True at this generation with a scan result.
func gatePassed(fn *serverlessv1alpha1.Function) bool {
	acc := meta.FindStatusCondition(fn.Status.Conditions, common.ConditionAccepted)
	return acc != nil && acc.Status == metav1.ConditionTrue && acc.ObservedGeneration == fn.Generation && fn.Status.Scan != nil
}

// GatePassed tells a function host whether it may load fn: always without a
// scanPolicy; with one, only once the Function controller recorded a
// passing scan of the SBOM for the current generation (Accepted True at
// this generation, and status.scan set). The controller sets Accepted True
// and status.digest together, only for a module whose SBOM passed, and
// clears the digest when the gate does not pass.
func GatePassed(fn *serverlessv1alpha1.Function) bool {
	return fn.Spec.ScanPolicy == nil || gatePassed(fn)
}

// readSBOM reads the SBOM key from data or binaryData; problem says what is
// missing.
func readSBOM(ctx context.Context, c client.Reader, ns string, ref *common.KeySelector) (sbom []byte, problem string, err error) {
	sbom, problem, err = kube.ConfigMapKey(ctx, c, ns, ref.Name, ref.Key)
	if err != nil {
		return nil, "", fmt.Errorf("reading the SBOM: %w", err)
	}
	if problem != "" {
		return nil, "sbom: " + problem, nil
	}
	if len(bytes.TrimSpace(sbom)) == 0 {
		return nil, fmt.Sprintf("sbom: key %q of ConfigMap %q is empty", ref.Key, ref.Name), nil
	}
	return sbom, "", nil
}
