package gitops

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/scan/report"
	"github.com/cairn-platform/cairn/internal/scangate"
)

// gateResult is the scan gate's decision for one revision.
type gateResult struct {
	scans []gitopsv1alpha1.ImageScan
	// blocked describes every image with blocking findings; empty when the
	// apply may go on.
	blocked []string
	// digests maps each image reference to the digest scanned.
	digests map[string]string
}

// scanGate scans every image the objects' workloads reference and judges
// the reports with the GitRepo's scanPolicy. An error means no decision
// could be made (scanner missing or failing, image unreadable): the caller
// must not apply, since the gate fails closed.
func (r *GitRepoReconciler) scanGate(ctx context.Context, policy *common.ScanPolicy, objs []*unstructured.Unstructured) (gateResult, error) {
	images := workloadImages(objs)
	if len(images) == 0 {
		return gateResult{}, nil
	}
	if r.Scanner == nil {
		return gateResult{}, scangate.ErrNoScanner
	}
	p := scangate.Policy(policy)
	now := time.Now()
	var res gateResult
	for _, image := range images {
		rep, err := r.Scanner.ScanImage(ctx, image)
		if err != nil {
			return res, fmt.Errorf("scanning image %s: %w", image, err)
		}
		v := report.Evaluate(rep, p, now)
		res.scans = append(res.scans, gitopsv1alpha1.ImageScan{Image: image, ScanResult: scangate.Result(rep, v)})
		if rep.Digest != "" {
			if res.digests == nil {
				res.digests = map[string]string{}
			}
			res.digests[image] = rep.Digest
		}
		if v.Blocked {
			res.blocked = append(res.blocked, fmt.Sprintf("image %s (%s): %s", image, scangate.ShortDigest(rep.Digest), v.Summary(3)))
		}
	}
	return res, nil
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
	eachContainer(objs, func(c map[string]any) bool {
		if img, _ := c["image"].(string); img != "" {
			seen[img] = true
		}
		return false
	})
	images := make([]string, 0, len(seen))
	for img := range seen {
		images = append(images, img)
	}
	slices.Sort(images)
	return images
}

// pinDigests rewrites, in place, every container image of objs found in
// digests and not yet pinned to "image@digest". An image the scanner gave
// no digest for stays as it is.
func pinDigests(objs []*unstructured.Unstructured, digests map[string]string) {
	eachContainer(objs, func(c map[string]any) bool {
		img, _ := c["image"].(string)
		d, ok := digests[img]
		if !ok || strings.Contains(img, "@") {
			return false
		}
		c["image"] = img + "@" + d
		return true
	})
}

// eachContainer calls visit with every container, init and ephemeral
// container of every pod spec in objs; when visit changes one and says so,
// the change is written back into the object.
func eachContainer(objs []*unstructured.Unstructured, visit func(container map[string]any) (changed bool)) {
	for _, o := range objs {
		for _, path := range podSpecPaths {
			// NestedMap and NestedSlice return copies: write back what changed.
			spec, ok, _ := unstructured.NestedMap(o.Object, path...)
			if !ok {
				continue
			}
			specChanged := false
			for _, field := range []string{"initContainers", "containers", "ephemeralContainers"} {
				containers, _, _ := unstructured.NestedSlice(spec, field)
				changed := false
				for _, c := range containers {
					if m, ok := c.(map[string]any); ok && visit(m) {
						changed = true
					}
				}
				if changed {
					_ = unstructured.SetNestedSlice(spec, containers, field)
					specChanged = true
				}
			}
			if specChanged {
				_ = unstructured.SetNestedMap(o.Object, spec, path...)
			}
		}
	}
}
