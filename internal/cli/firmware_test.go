package cli

import (
	"crypto/rand"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/cairn-platform/cairn/dataplane/ota/tuf"
	"github.com/cairn-platform/cairn/internal/signing"
)

// firmwareRun runs the command line in-process without a cluster.
func firmwareRun(t *testing.T, args ...string) result {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	code := Run(t.Context(), args, streams)
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// noKubeconfig keeps tests from reading the user's kubeconfig.
func noKubeconfig(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "no-kubeconfig"))
}

func writeImage(t *testing.T, dir, file string, size int) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b
}

// splitObjects decodes the documents printed by -o yaml.
func splitObjects(t *testing.T, out string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(out, "---\n") {
		if strings.TrimSpace(doc) != "" {
			objs = append(objs, decodeObject(t, doc))
		}
	}
	return objs
}

func configMapData(t *testing.T, cm *unstructured.Unstructured) map[string]string {
	t.Helper()
	data, _, err := unstructured.NestedStringMap(cm.Object, "data")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mapFetcher(data map[string]string) tuf.MapFetcher {
	m := tuf.MapFetcher{}
	for k, v := range data {
		m[k] = []byte(v)
	}
	return m
}

// repoFiles returns the repository's published files as a fetcher.
func repoFiles(t *testing.T, dir string) tuf.MapFetcher {
	t.Helper()
	repo, err := tuf.OpenRepository(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := repo.Files()
	if err != nil {
		t.Fatal(err)
	}
	return tuf.MapFetcher(files)
}

func timestampOf(t *testing.T, files tuf.MapFetcher) int64 {
	t.Helper()
	var env struct {
		Signed tuf.Timestamp `json:"signed"`
	}
	if err := json.Unmarshal(files[tuf.TimestampFile], &env); err != nil {
		t.Fatal(err)
	}
	return env.Signed.Version
}

// checkRelease verifies fw's signatures with the trusted keys ConfigMap,
// and its artifact against image.
func checkRelease(t *testing.T, fw, keys *unstructured.Unstructured, image []byte, wantVerified int) {
	t.Helper()
	sha, _, _ := unstructured.NestedString(fw.Object, "spec", "artifact", "sha256")
	size, _, _ := unstructured.NestedInt64(fw.Object, "spec", "artifact", "size")
	if sha != digest(image) || size != int64(len(image)) {
		t.Fatalf("artifact sha256 %s size %d; want %s %d", sha, size, digest(image), len(image))
	}
	list, _, _ := unstructured.NestedSlice(fw.Object, "spec", "signatures", "signatures")
	var sigs []signing.Signature
	for _, s := range list {
		m := s.(map[string]any)
		sigs = append(sigs, signing.Signature{KeyID: m["keyID"].(string), Value: m["value"].(string)})
	}
	res, err := signing.Verify(sha, sigs, configMapData(t, keys))
	if err != nil {
		t.Fatal(err)
	}
	threshold, _, _ := unstructured.NestedInt64(fw.Object, "spec", "signatures", "threshold")
	if len(res.Verified) != wantVerified || int64(len(res.Verified)) < threshold || len(res.Problems) > 0 {
		t.Fatalf("verified %v (threshold %d), problems %v; want %d verified", res.Verified, threshold, res.Problems, wantVerified)
	}
}

func TestFirmwareSignPublishRotate(t *testing.T) {
	noKubeconfig(t)
	dir := t.TempDir()
	keys, repoDir := filepath.Join(dir, "keys"), filepath.Join(dir, "repo")

	r := mustSucceed(t, firmwareRun(t, "firmware", "keygen", keys))
	for _, role := range firmwareRoles {
		info, err := os.Stat(filepath.Join(keys, role+".key"))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("%s.key: %v, mode %v; want a 0600 file", role, err, info)
		}
	}
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 4 {
		t.Fatalf("keygen printed %q; want one line per role", r.stdout)
	}
	if strings.Contains(r.stdout, "private") {
		t.Fatalf("keygen printed %q", r.stdout)
	}
	before, _ := os.ReadFile(filepath.Join(keys, "root.key"))
	r = mustFail(t, firmwareRun(t, "firmware", "keygen", keys))
	if !strings.Contains(r.stderr, "refusing to overwrite") {
		t.Fatalf("stderr %q", r.stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(keys, "root.key")); string(after) != string(before) {
		t.Fatal("keygen overwrote root.key")
	}
	// A second targets key, for a release threshold of 2.
	mustSucceed(t, firmwareRun(t, "firmware", "keygen", keys, "--role", "targets", "--name", "targets-2"))
	mustFail(t, firmwareRun(t, "firmware", "keygen", keys, "--role", "targets", "--name", "targets-2"))
	mustFail(t, firmwareRun(t, "firmware", "keygen", keys, "--role", "targets", "--name", "other"))
	mustSucceed(t, firmwareRun(t, "firmware", "keygen", keys, "--role", "snapshot"))
	if extra, _ := filepath.Glob(filepath.Join(keys, "snapshot-*.key")); len(extra) != 1 {
		t.Fatalf("keygen --role snapshot wrote %v; want one snapshot-ID.key", extra)
	}

	r = mustFail(t, firmwareRun(t, "firmware", "init", repoDir, "--keys", filepath.Join(dir, "nokeys")))
	if !strings.Contains(r.stderr, "run cairn firmware keygen") {
		t.Fatalf("stderr %q", r.stderr)
	}
	mustSucceed(t, firmwareRun(t, "firmware", "init", repoDir, "--keys", keys, "--targets-threshold", "2"))
	mustFail(t, firmwareRun(t, "firmware", "init", repoDir, "--keys", keys))

	image1, content1 := writeImage(t, dir, "fw.img", 4096)
	image2, content2 := writeImage(t, dir, "fw2.img", 1000)
	r = mustSucceed(t, firmwareRun(t, "firmware", "sign", image1, "--repo", repoDir, "--keys", keys, "--version", "1.0.0", "--model", "gw-2", "--model", "gw-1"))
	target1 := "gw-2/1.0.0/fw.img"
	if !strings.Contains(r.stdout, target1) || !strings.Contains(r.stdout, digest(content1)) || !strings.Contains(r.stdout, "4096") {
		t.Fatalf("sign printed %q; want the target, sha256 and size", r.stdout)
	}
	target2 := "gw-1/fw2-1.1.0"
	mustSucceed(t, firmwareRun(t, "firmware", "sign", image2, "--repo", repoDir, "--keys", keys, "--version", "1.1.0", "--model", "gw-1", "--target", target2))
	r = mustFail(t, firmwareRun(t, "firmware", "sign", image2, "--repo", repoDir, "--keys", keys, "--version", "v1", "--model", "gw-1"))
	if !strings.Contains(r.stderr, "semantic version") {
		t.Fatalf("stderr %q", r.stderr)
	}
	r = mustFail(t, firmwareRun(t, "firmware", "sign", image2, "--repo", filepath.Join(dir, "norepo"), "--keys", keys, "--version", "1.0.0", "--model", "gw-1"))
	if !strings.Contains(r.stderr, "run cairn firmware init") {
		t.Fatalf("stderr %q", r.stderr)
	}

	r = mustSucceed(t, firmwareRun(t, "firmware", "publish", "gw-1-0-0", "-n", "fleet", "--repo", repoDir, "--target", target1,
		"--url", "https://fw.example.com/fw.img", "--selector", "site=lab", "--waves", "5,100", "--wave-pause", "1h",
		"--max-unavailable", "2", "--dry-run=client", "-o", "yaml"))
	objs := splitObjects(t, r.stdout)
	if len(objs) != 3 {
		t.Fatalf("publish printed %d objects:\n%s", len(objs), r.stdout)
	}
	repoCM, keysCM, fw := objs[0], objs[1], objs[2]
	if repoCM.GetKind() != "ConfigMap" || repoCM.GetName() != "firmware-repository" || keysCM.GetName() != "firmware-repository-keys" ||
		fw.GetKind() != "Firmware" || fw.GetName() != "gw-1-0-0" || fw.GetNamespace() != "fleet" {
		t.Fatalf("published %s/%s, %s/%s, %s/%s", repoCM.GetKind(), repoCM.GetName(), keysCM.GetKind(), keysCM.GetName(), fw.GetKind(), fw.GetName())
	}
	checkRelease(t, fw, keysCM, content1, 2)
	assertField(t, fw, "1.0.0", "spec", "version")
	assertField(t, fw, "https://fw.example.com/fw.img", "spec", "artifact", "url")
	assertField(t, fw, target1, "spec", "metadata", "target")
	assertField(t, fw, "firmware-repository", "spec", "metadata", "repository", "name")
	assertField(t, fw, "firmware-repository-keys", "spec", "signatures", "trustedKeys", "name")
	assertField(t, fw, "lab", "spec", "rollout", "selector", "matchLabels", "site")
	if waves, _, _ := unstructured.NestedSlice(fw.Object, "spec", "rollout", "waves"); len(waves) != 2 ||
		waves[0].(map[string]any)["pause"] != "1h" || waves[1].(map[string]any)["pause"] != nil {
		t.Errorf("waves %v; want 5 with a 1h pause, then 100", waves)
	}
	if models, _, _ := unstructured.NestedStringSlice(fw.Object, "spec", "compatibleModels"); strings.Join(models, ",") != "gw-2,gw-1" {
		t.Errorf("compatibleModels %v", models)
	}
	if mu, _, _ := unstructured.NestedInt64(fw.Object, "spec", "rollout", "maxUnavailable"); mu != 2 {
		t.Errorf("maxUnavailable %d", mu)
	}
	if ar, _, _ := unstructured.NestedBool(fw.Object, "spec", "rollout", "autoRollback"); !ar {
		t.Error("autoRollback not set")
	}

	// A device's view of the repository ConfigMap: both releases verify.
	files := mapFetcher(configMapData(t, repoCM))
	store := &tuf.MemoryStore{}
	if err := tuf.Bootstrap(store, files["1.root.json"]); err != nil {
		t.Fatal(err)
	}
	client, err := tuf.NewClient(store, files, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Update(t.Context()); err != nil {
		t.Fatal(err)
	}
	for target, content := range map[string][]byte{target1: content1, target2: content2} {
		tf, err := client.Target(target)
		if err != nil {
			t.Fatal(err)
		}
		if err := tf.Check(int64(len(content)), digest(content)); err != nil {
			t.Fatal(err)
		}
	}
	tf, _ := client.Target(target1)
	if fwMeta, err := tf.Firmware(); err != nil || fwMeta.Version != "1.0.0" || strings.Join(fwMeta.Models, ",") != "gw-2,gw-1" {
		t.Fatalf("custom metadata %+v, %v", fwMeta, err)
	}

	// refresh signs a new timestamp.
	ts := timestampOf(t, repoFiles(t, repoDir))
	r = mustSucceed(t, firmwareRun(t, "firmware", "refresh", "--repo", repoDir, "--keys", keys))
	if got := timestampOf(t, repoFiles(t, repoDir)); got != ts+1 {
		t.Fatalf("timestamp version %d after refresh; want %d", got, ts+1)
	}

	// rotate-root: a client trusting version 1 follows to version 2.
	keys2 := filepath.Join(dir, "keys2")
	mustSucceed(t, firmwareRun(t, "firmware", "keygen", keys2))
	// Only the current root keys can sign a rotation.
	mustFail(t, firmwareRun(t, "firmware", "rotate-root", "--repo", repoDir, "--keys", keys2, "--new-keys", keys2))
	mustSucceed(t, firmwareRun(t, "firmware", "rotate-root", "--repo", repoDir, "--keys", keys, "--new-keys", keys2))
	client, err = tuf.NewClient(store, repoFiles(t, repoDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Update(t.Context()); err != nil {
		t.Fatalf("update after rotate-root: %v", err)
	}
	if v := client.RootVersion(); v != 2 {
		t.Fatalf("root version %d after rotate-root; want 2", v)
	}
	if _, err := client.Target(target2); err != nil {
		t.Fatal(err)
	}
	// The old release is signed by keys the new root no longer trusts.
	r = mustFail(t, firmwareRun(t, "firmware", "publish", "gw-1-0-0", "--repo", repoDir, "--target", target1, "--url", "https://fw.example.com/fw.img", "--dry-run=client"))
	if !strings.Contains(r.stderr, "sign the image again") {
		t.Fatalf("stderr %q", r.stderr)
	}
	r = mustFail(t, firmwareRun(t, "firmware", "sign", image1, "--repo", repoDir, "--keys", keys, "--version", "1.0.0", "--model", "gw-2", "--model", "gw-1"))
	if !strings.Contains(r.stderr, "not trusted") {
		t.Fatalf("stderr %q", r.stderr)
	}
	mustSucceed(t, firmwareRun(t, "firmware", "sign", image1, "--repo", repoDir, "--keys", keys2, "--version", "1.0.0", "--model", "gw-2", "--model", "gw-1"))
	r = mustSucceed(t, firmwareRun(t, "firmware", "publish", "gw-1-0-0", "--repo", repoDir, "--target", target1, "--url", "https://fw.example.com/fw.img", "--dry-run=client", "-o", "yaml"))
	objs = splitObjects(t, r.stdout)
	checkRelease(t, objs[2], objs[1], content1, 1)
	r = mustSucceed(t, firmwareRun(t, "firmware", "publish", "gw-1-0-0", "--repo", repoDir, "--target", target1, "--url", "https://fw.example.com/fw.img", "--dry-run=client"))
	want := "configmap/firmware-repository serverside-applied (dry run)\nconfigmap/firmware-repository-keys serverside-applied (dry run)\nfirmware.edge.cairn.dev/gw-1-0-0 serverside-applied (dry run)\n"
	if r.stdout != want {
		t.Fatalf("stdout %q; want %q", r.stdout, want)
	}
	for _, key := range []string{"root", "targets", "snapshot", "timestamp"} {
		b, _ := os.ReadFile(filepath.Join(keys2, key+".key"))
		var kf struct {
			Value struct {
				Private string `json:"private"`
			} `json:"keyval"`
		}
		if err := json.Unmarshal(b, &kf); err != nil || kf.Value.Private == "" {
			t.Fatalf("%s.key: %v", key, err)
		}
		if strings.Contains(r.stdout, kf.Value.Private) {
			t.Fatalf("output contains the private %s key", key)
		}
	}
}

func TestFirmwarePublishErrors(t *testing.T) {
	noKubeconfig(t)
	dir := t.TempDir()
	keys, repoDir := filepath.Join(dir, "keys"), filepath.Join(dir, "repo")
	mustSucceed(t, firmwareRun(t, "firmware", "keygen", keys))
	mustSucceed(t, firmwareRun(t, "firmware", "init", repoDir, "--keys", keys))
	image, _ := writeImage(t, dir, "fw.img", 100)
	other, _ := writeImage(t, dir, "other.img", 100)
	mustSucceed(t, firmwareRun(t, "firmware", "sign", image, "--repo", repoDir, "--keys", keys, "--version", "1.0.0", "--model", "gw"))
	base := []string{"firmware", "publish", "fw", "--repo", repoDir, "--target", "gw/1.0.0/fw.img", "--dry-run=client"}
	sbom := filepath.Join(dir, "fw.cdx.json")
	if err := os.WriteFile(sbom, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "exactly one of --url or --oci"},
		{[]string{"--url", "https://a/b", "--oci", "r.example/a:b"}, "exactly one of --url or --oci"},
		{[]string{"--oci", "r.example/a:b"}, "--oci needs --image"},
		{[]string{"--url", "ftp://a/b"}, "invalid --url"},
		{[]string{"--url", "https://a/b", "--waves", "50,20,100"}, "strictly ascending"},
		{[]string{"--url", "https://a/b", "--waves", "10,50"}, "must reach 100"},
		{[]string{"--url", "https://a/b", "--max-unavailable", "0"}, "invalid --max-unavailable"},
		{[]string{"--url", "https://a/b", "--wave-pause", "1.5h"}, "invalid --wave-pause"},
		{[]string{"--url", "https://a/b", "--selector", "a=(b"}, "invalid --selector"},
		{[]string{"--url", "https://a/b", "--dry-run=maybe"}, "invalid --dry-run"},
		{[]string{"--oci", "r.example/a:b", "--image", other}, "differs from the signed"},
		{[]string{"--url", "https://a/b", "--target", "gw/2.0.0/fw.img"}, "sign the image first"},
		{[]string{"--url", "https://a/b", "--fail-on", "high"}, "--fail-on needs --sbom"},
		{[]string{"--url", "https://a/b", "--sbom", sbom, "--fail-on", "severe"}, "invalid --fail-on"},
		{[]string{"--url", "https://a/b", "--sbom", sbom}, "signed without --sbom"},
	} {
		r := firmwareRun(t, append(append([]string{}, base...), tc.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error with %q", tc.args, r.code, r.stderr, tc.want)
		}
	}

	// Signed with the SBOM: publish stores that document and no other.
	image2, _ := writeImage(t, dir, "fw2.img", 100)
	mustSucceed(t, firmwareRun(t, "firmware", "sign", image2, "--repo", repoDir, "--keys", keys, "--version", "1.0.1", "--model", "gw", "--sbom", sbom))
	swapped := filepath.Join(dir, "other.cdx.json")
	if err := os.WriteFile(swapped, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	signed := []string{"firmware", "publish", "fw2", "--repo", repoDir, "--target", "gw/1.0.1/fw2.img", "--url", "https://a/b", "--dry-run=client", "-o", "yaml"}
	if r := firmwareRun(t, append(append([]string{}, signed...), "--sbom", swapped)...); r.code == 0 || !strings.Contains(r.stderr, "is not the SBOM signed into target") {
		t.Errorf("swapped SBOM: exit %d, stderr %q", r.code, r.stderr)
	}
	r := mustSucceed(t, firmwareRun(t, append(append([]string{}, signed...), "--sbom", sbom, "--fail-on", "HIGH")...))
	for _, want := range []string{"name: fw2-sbom", "sbom.json.gz: ", "key: sbom.json.gz", "failOn: High"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("publish output lacks %q:\n%s", want, r.stdout)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := firmwareRun(t, "firmware", "sign", image2, "--repo", repoDir, "--keys", keys, "--version", "1.0.2", "--model", "gw", "--sbom", filepath.Join(dir, "bad.json")); r.code == 0 || !strings.Contains(r.stderr, "not a JSON document") {
		t.Errorf("non-JSON SBOM: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestFirmwarePublishOCI pushes an image to a registry on loopback and pulls
// its layer back by the image's own digest.
func TestFirmwarePublishOCI(t *testing.T) {
	noKubeconfig(t)
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	t.Setenv("DOCKER_CONFIG", t.TempDir())

	dir := t.TempDir()
	keys, repoDir := filepath.Join(dir, "keys"), filepath.Join(dir, "repo")
	mustSucceed(t, firmwareRun(t, "firmware", "keygen", keys))
	mustSucceed(t, firmwareRun(t, "firmware", "init", repoDir, "--keys", keys))
	image, content := writeImage(t, dir, "fw.img", 70000)
	mustSucceed(t, firmwareRun(t, "firmware", "sign", image, "--repo", repoDir, "--keys", keys, "--version", "2.0.0-rc.1", "--model", "gw"))
	ref := host + "/fw/gw:2.0.0-rc.1"

	// A dry run computes the pinned reference without pushing.
	r := mustSucceed(t, firmwareRun(t, "firmware", "publish", "fw", "--repo", repoDir, "--target", "gw/2.0.0-rc.1/fw.img",
		"--oci", ref, "--image", image, "--insecure", "--dry-run=client", "-o", "yaml"))
	fw := splitObjects(t, r.stdout)[2]
	pinned, _, _ := unstructured.NestedString(fw.Object, "spec", "artifact", "oci")
	if !strings.HasPrefix(pinned, host+"/fw/gw@sha256:") {
		t.Fatalf("spec.artifact.oci %q; want %s/fw/gw pinned by digest", pinned, host)
	}
	tag, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(tag); err == nil {
		t.Fatal("a dry run pushed the image")
	}

	got, err := pushFirmwareImage(t.Context(), ref, content, digest(content), true, true)
	if err != nil {
		t.Fatal(err)
	}
	if got != pinned {
		t.Fatalf("pushed %s; the dry run said %s", got, pinned)
	}
	checkPushedFirmware(t, pinned, content)
}

// checkPushedFirmware pulls the artifact at pinned and its layer by the
// image's digest.
func checkPushedFirmware(t *testing.T, pinned string, content []byte) {
	t.Helper()
	ref, err := name.ParseReference(pinned, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Config.MediaType) != firmwareConfigMediaType || len(m.Layers) != 1 || string(m.Layers[0].MediaType) != firmwareLayerMediaType {
		t.Fatalf("manifest %+v", m)
	}
	layer, err := remote.Layer(ref.Context().Digest("sha256:" + digest(content)))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(content) {
		t.Fatalf("pulled %d bytes that differ from the %d-byte image", len(b), len(content))
	}
}

var (
	firmwares  = schema.GroupVersionResource{Group: "edge.cairn.dev", Version: "v1alpha1", Resource: "firmwares"}
	configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
)

// TestFirmwarePublishAppliesToCluster publishes a release against a real API
// server, which validates the Firmware against its CRD schema.
func TestFirmwarePublishAppliesToCluster(t *testing.T) {
	c := cluster(t)
	crds, err := envtest.InstallCRDs(c.config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join("..", "..", "config", "crd", "bases", "edge.cairn.dev_firmwares.yaml")},
	})
	if err != nil {
		t.Fatalf("installing the Firmware CRD: %v", err)
	}
	t.Cleanup(func() { _ = envtest.UninstallCRDs(c.config, envtest.CRDInstallOptions{CRDs: crds}) })
	ns := c.namespace(t)
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	t.Setenv("DOCKER_CONFIG", t.TempDir())

	dir := t.TempDir()
	keys, repoDir := filepath.Join(dir, "keys"), filepath.Join(dir, "repo")
	mustSucceed(t, c.cairn(t, "firmware", "keygen", keys))
	mustSucceed(t, c.cairn(t, "firmware", "init", repoDir, "--keys", keys))
	image, content := writeImage(t, dir, "fw.img", 5000)
	mustSucceed(t, c.cairn(t, "firmware", "sign", image, "--repo", repoDir, "--keys", keys, "--version", "1.4.2", "--model", "acme-gw-2"))
	publish := []string{"firmware", "publish", "gw-1-4-2", "-n", ns, "--repo", repoDir, "--target", "acme-gw-2/1.4.2/fw.img",
		"--oci", host + "/fw/gw:1.4.2", "--image", image, "--insecure", "--waves", "10,100", "--wave-pause", "30m", "--max-unavailable", "20%", "--paused"}

	r := mustSucceed(t, c.cairn(t, append(publish, "--dry-run=server")...))
	if !strings.Contains(r.stdout, "firmware.edge.cairn.dev/gw-1-4-2 serverside-applied (server dry run)") {
		t.Fatalf("stdout %q", r.stdout)
	}
	if _, err := c.get(t, firmwares, ns, "gw-1-4-2"); err == nil {
		t.Fatal("a server dry run created the Firmware")
	}

	r = mustSucceed(t, c.cairn(t, publish...))
	want := "configmap/firmware-repository serverside-applied\nconfigmap/firmware-repository-keys serverside-applied\nfirmware.edge.cairn.dev/gw-1-4-2 serverside-applied\n"
	if r.stdout != want {
		t.Fatalf("stdout %q; want %q", r.stdout, want)
	}
	fw, err := c.get(t, firmwares, ns, "gw-1-4-2")
	if err != nil {
		t.Fatal(err)
	}
	keysCM, err := c.get(t, configMaps, ns, "firmware-repository-keys")
	if err != nil {
		t.Fatal(err)
	}
	checkRelease(t, fw, keysCM, content, 1)
	if paused, _, _ := unstructured.NestedBool(fw.Object, "spec", "rollout", "paused"); !paused {
		t.Error("spec.rollout.paused not set")
	}
	pinned, _, _ := unstructured.NestedString(fw.Object, "spec", "artifact", "oci")
	checkPushedFirmware(t, pinned, content)
	// Publishing again changes nothing.
	mustSucceed(t, c.cairn(t, publish...))
	again, err := c.get(t, firmwares, ns, "gw-1-4-2")
	if err != nil {
		t.Fatal(err)
	}
	if again.GetGeneration() != fw.GetGeneration() {
		t.Errorf("generation %d after publishing again; want %d", again.GetGeneration(), fw.GetGeneration())
	}

	repoCM, err := c.get(t, configMaps, ns, "firmware-repository")
	if err != nil {
		t.Fatal(err)
	}
	ts := timestampOf(t, mapFetcher(configMapData(t, repoCM)))
	mustSucceed(t, c.cairn(t, "firmware", "refresh", "-n", ns, "--repo", repoDir, "--keys", keys, "--apply"))
	repoCM, err = c.get(t, configMaps, ns, "firmware-repository")
	if err != nil {
		t.Fatal(err)
	}
	if got := timestampOf(t, mapFetcher(configMapData(t, repoCM))); got != ts+1 {
		t.Fatalf("timestamp version %d in the ConfigMap after refresh --apply; want %d", got, ts+1)
	}
}
