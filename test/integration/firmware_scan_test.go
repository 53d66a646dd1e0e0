package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/controllers"
	"github.com/cairn-platform/cairn/dataplane/scan"
	"github.com/cairn-platform/cairn/dataplane/scan/scanapi"
	"github.com/cairn-platform/cairn/dataplane/scan/scantest"
	xdsserver "github.com/cairn-platform/cairn/dataplane/xds/server"
	"github.com/cairn-platform/cairn/internal/cli"
)

// TestFirmwareScanGate signs releases with their SBOMs (cairn firmware
// sign/publish --sbom, run in-process) and checks that the Firmware
// controller, scanning through the real scanner process, holds back a
// release whose SBOM has a finding at or above --fail-on (no device is
// assigned it), refuses an SBOM swapped after signing, and rolls out the
// fixed release.
func TestFirmwareScanGate(t *testing.T) {
	requireEnv(t)
	scannerURL := startScanner(t)
	runManager(t, controllers.Config{
		XDS:          xdsserver.New(testLogger(t)),
		OTAURL:       "http://ota.example.invalid",
		ImageScanner: &scanapi.Client{BaseURL: scannerURL, HTTP: &http.Client{Timeout: time.Minute}},
	})
	ns := newNamespace(t)
	createAll(t, ns, `
apiVersion: edge.cairn.dev/v1alpha1
kind: EdgeDevice
metadata: {name: dev-1}
spec: {hardware: {model: sim}}`)
	dir := t.TempDir()
	kubeconfig, err := env.Kubeconfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	cairn := func(t *testing.T, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		args = append(args, "--kubeconfig", kubeconfig, "-n", ns)
		if code := cli.Run(context.Background(), args, genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}); code != 0 {
			t.Fatalf("cairn %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
		}
		return out.String()
	}
	keys, repo := filepath.Join(dir, "keys"), filepath.Join(dir, "repo")
	cairn(t, "firmware", "keygen", keys)
	cairn(t, "firmware", "init", repo, "--keys", keys)

	release := func(t *testing.T, name, version, apkVersion string) {
		t.Helper()
		img := filepath.Join(dir, name+".img")
		if err := os.WriteFile(img, firmwareImage(uint64(len(name)), 4096), 0o600); err != nil {
			t.Fatal(err)
		}
		sbomFile := filepath.Join(dir, name+".cdx.json")
		writeRootfsSBOM(t, sbomFile, apkVersion)
		target := "sim/" + version + "/" + name + ".img"
		cairn(t, "firmware", "sign", img, "--repo", repo, "--keys", keys, "--version", version, "--model", "sim", "--sbom", sbomFile)
		cairn(t, "firmware", "publish", name, "--repo", repo, "--target", target, "--url", "http://origin.example.invalid/"+name+".img",
			"--sbom", sbomFile, "--fail-on", "high", "--waves", "100", "--max-unavailable", "100%")
	}
	waitFirmware := func(t *testing.T, name, condType string, status, reason, msg string) *edgev1alpha1.Firmware {
		t.Helper()
		fw := &edgev1alpha1.Firmware{}
		eventually(t, 60*time.Second, func(ctx context.Context) error {
			if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, fw); err != nil {
				return err
			}
			c := meta.FindStatusCondition(fw.Status.Conditions, condType)
			if c == nil || string(c.Status) != status || c.Reason != reason || !strings.Contains(c.Message, msg) {
				return fmt.Errorf("%s = %+v; want %s/%s with %q", condType, c, status, reason, msg)
			}
			return nil
		})
		return fw
	}
	assignment := func(t *testing.T) string {
		t.Helper()
		var dev edgev1alpha1.EdgeDevice
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "dev-1"}, &dev); err != nil {
			t.Fatal(err)
		}
		return dev.Annotations[edgev1alpha1.AnnotationOTAAssignment]
	}

	t.Run("vulnerable release is held back", func(t *testing.T) {
		release(t, "gw-1", "1.0.0", scantest.VulnerableAPKVersion)
		fw := waitFirmware(t, "gw-1", "Progressing", "False", "ScanBlocked", scantest.APKVulnID)
		t.Logf("Progressing: %s", meta.FindStatusCondition(fw.Status.Conditions, "Progressing").Message)
		if !meta.IsStatusConditionTrue(fw.Status.Conditions, "Accepted") {
			t.Errorf("a signed release with a vulnerable SBOM must stay Accepted: %+v", meta.FindStatusCondition(fw.Status.Conditions, "Accepted"))
		}
		if s := fw.Status.Scan; s == nil || s.Findings["High"] != 1 || len(s.Blocking) != 1 || !strings.HasPrefix(s.Digest, "sha256:") || s.DBBuilt == nil {
			t.Errorf("status.scan = %+v", s)
		}
		if a := assignment(t); a != "" {
			t.Errorf("device assigned the blocked release: %s", a)
		}
		requireEvents(t, fw, "ScanBlocked")
	})

	t.Run("SBOM swapped after signing is refused", func(t *testing.T) {
		var cm corev1.ConfigMap
		key := types.NamespacedName{Namespace: ns, Name: "gw-1-sbom"}
		if err := env.Client.Get(context.Background(), key, &cm); err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(dir, "clean.cdx.json")
		writeRootfsSBOM(t, other, scantest.FixedAPKVersion)
		doc, err := os.ReadFile(other)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(doc)
		_ = zw.Close()
		cm.BinaryData["sbom.json.gz"] = buf.Bytes()
		if err := env.Client.Update(context.Background(), &cm); err != nil {
			t.Fatal(err)
		}
		waitFirmware(t, "gw-1", "Accepted", "False", "SBOMMismatch", "signed target says")
		if a := assignment(t); a != "" {
			t.Errorf("device assigned a release whose SBOM was swapped: %s", a)
		}
	})

	t.Run("fixed release rolls out", func(t *testing.T) {
		release(t, "gw-2", "1.0.1", scantest.FixedAPKVersion)
		fw := waitFirmware(t, "gw-2", "Accepted", "True", "SignaturesVerified", "")
		eventually(t, 60*time.Second, func(ctx context.Context) error {
			if a := assignment(t); !strings.Contains(a, "1.0.1") {
				return fmt.Errorf("assignment = %q, want release 1.0.1", a)
			}
			return nil
		})
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "gw-2"}, fw); err != nil {
			t.Fatal(err)
		}
		if s := fw.Status.Scan; s == nil || s.Findings["High"] != 0 || len(s.Blocking) != 0 {
			t.Errorf("status.scan = %+v, want no High finding", s)
		}
	})
}

// writeRootfsSBOM catalogues an Alpine-like root filesystem (the scanner
// fixture's apk database, musl at apkVersion) with syft and writes its
// CycloneDX SBOM, as a firmware build would with `cairn sbom ROOTFS`.
func writeRootfsSBOM(t *testing.T, file, apkVersion string) {
	t.Helper()
	rootfs := t.TempDir()
	for _, f := range scantest.Files(t, scantest.ImageOptions{APKVersion: apkVersion, NoGoBinary: true}) {
		p := filepath.Join(rootfs, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sb, err := scan.GenerateSBOM(context.Background(), scan.Dir(rootfs))
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = out.Close() }()
	if err := scan.EncodeSBOM(out, sb, scan.FormatCycloneDXJSON); err != nil {
		t.Fatal(err)
	}
}
