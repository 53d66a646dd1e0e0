package gitops

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/scan/report"
	"github.com/cairn-platform/cairn/dataplane/scan/scanapi"
)

// ImageScanner scans an image (scanapi.Client talks to cmd/scanner). It is
// an interface so the manager never links the scanning libraries.
type ImageScanner interface {
	ScanImage(ctx context.Context, image string) (report.Report, error)
}

// maxBlockingListed bounds status.imageScans[].blocking.
const maxBlockingListed = 20

// gateResult is the scan gate's decision for one revision.
type gateResult struct {
	scans []gitopsv1alpha1.ImageScan
	// blocked describes every image with blocking findings; empty when the
	// apply may go on.
	blocked []string
}

// scanGate scans every image the objects' workloads reference and judges
// the reports with the GitRepo's scanPolicy. An error means no decision
// could be made (scanner missing or failing, image unreadable): the caller
// must not apply, since the gate fails closed.
func (r *GitRepoReconciler) scanGate(ctx context.Context, policy *gitopsv1alpha1.ScanPolicy, objs []*unstructured.Unstructured) (gateResult, error) {
	images := workloadImages(objs)
	if len(images) == 0 {
		return gateResult{}, nil
	}
	if r.Scanner == nil {
		return gateResult{}, fmt.Errorf("spec.scanPolicy is set but the manager has no scanner (--scanner-url); nothing is applied unscanned")
	}
	p := toPolicy(policy)
	now := time.Now()
	var res gateResult
	for _, image := range images {
		rep, err := r.Scanner.ScanImage(ctx, image)
		if err != nil {
			return res, fmt.Errorf("scanning image %s: %w", image, err)
		}
		v := report.Evaluate(rep, p, now)
		res.scans = append(res.scans, imageScan(image, rep, v))
		if v.Blocked {
			res.blocked = append(res.blocked, fmt.Sprintf("image %s (%s): %s", image, shortDigest(rep.Digest), v.Summary(3)))
		}
	}
	return res, nil
}

func toPolicy(sp *gitopsv1alpha1.ScanPolicy) report.Policy {
	var p report.Policy
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

func imageScan(image string, rep report.Report, v report.Verdict) gitopsv1alpha1.ImageScan {
	s := gitopsv1alpha1.ImageScan{Image: image, Digest: rep.Digest}
	if !rep.DBBuilt.IsZero() {
		s.DBBuilt = &metav1.Time{Time: rep.DBBuilt}
	}
	for _, f := range rep.Findings {
		if s.Findings == nil {
			s.Findings = map[string]int{}
		}
		s.Findings[f.Severity.String()]++
	}
	for _, f := range v.Blocking[:min(len(v.Blocking), maxBlockingListed)] {
		s.Blocking = append(s.Blocking, fmt.Sprintf("%s (%s) in %s %s", f.ID, f.Severity, f.Package, f.Version))
	}
	for _, f := range v.Ignored {
		if !slices.Contains(s.Ignored, f.ID) {
			s.Ignored = append(s.Ignored, f.ID)
		}
	}
	return s
}

func shortDigest(d string) string {
	if d == "" {
		return "digest unknown"
	}
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return d[:len(d)-len(hex)] + hex[:12]
	}
	return d
}

// scanProblemReason tells an image the scanner cannot read (the manifests
// must change) from a scanner that is down (wait).
func scanProblemReason(err error) string {
	if scanapi.ImageProblem(err) {
		return ReasonScanFailed
	}
	return ReasonScanUnavailable
}

// podSpecPaths are where workload kinds keep their pod spec: Pod;
// Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and most custom
// workloads (Argo Rollouts, …); CronJob.
var podSpecPaths = [][]string{
	{"spec"},
	{"spec", "template", "spec"},
	{"spec", "jobTemplate", "spec", "template", "spec"},
}

// workloadImages returns the distinct container images of every pod spec
// in objs, sorted.
func workloadImages(objs []*unstructured.Unstructured) []string {
	seen := map[string]bool{}
	for _, o := range objs {
		for _, path := range podSpecPaths {
			spec, ok, _ := unstructured.NestedMap(o.Object, path...)
			if !ok {
				continue
			}
			for _, field := range []string{"initContainers", "containers", "ephemeralContainers"} {
				containers, _, _ := unstructured.NestedSlice(spec, field)
				for _, c := range containers {
					if m, ok := c.(map[string]any); ok {
						if img, _ := m["image"].(string); img != "" {
							seen[img] = true
						}
					}
				}
			}
		}
	}
	images := make([]string, 0, len(seen))
	for img := range seen {
		images = append(images, img)
	}
	slices.Sort(images)
	return images
}
