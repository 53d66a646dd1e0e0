package integration

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/controllers"
	"github.com/cairn-platform/cairn/dataplane/edgehub"
	"github.com/cairn-platform/cairn/dataplane/ota/kubesource"
	otaserver "github.com/cairn-platform/cairn/dataplane/ota/server"
	"github.com/cairn-platform/cairn/dataplane/ota/tuf"
	"github.com/cairn-platform/cairn/internal/signing"
)

// otaEnv is the edge hub with the manager's OTA server (behind a hook that
// can break downloads), a TUF repository signed with real keys, and an
// origin web server the manager fetches firmware images from.
type otaEnv struct {
	*edgeEnv
	otaURL   string
	hook     *otaHook
	repo     *tuf.Repository
	signers  tuf.Signers
	rootFile string
	origin   *httptest.Server
	images   sync.Map // sha256 → []byte
	release  ed25519.PrivateKey
	agentBin string
	dir      string
	// firstRoot is 1.root.json, the root devices are provisioned with;
	// repoName is the repository ConfigMap.
	firstRoot []byte
	repoName  string
}

const (
	otaRepository  = "firmware-repository"
	otaReleaseKeys = "release-keys"
	otaModel       = "sim"
)

func startEdgeOTA(t testing.TB) *otaEnv {
	t.Helper()
	requireEnv(t)
	o := &otaEnv{hook: &otaHook{}, dir: t.TempDir()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The OTA server reads through an informer cache, as in the manager.
	cached, err := cluster.New(env.Config, func(co *cluster.Options) { co.Scheme = controllers.NewScheme() })
	if err != nil {
		t.Fatal(err)
	}
	cacheCtx, stopCache := context.WithCancel(context.Background())
	t.Cleanup(stopCache)
	go func() { _ = cached.Start(cacheCtx) }()
	hubOpts := edgehub.Options{TCPListener: ln}
	if _, bench := t.(*testing.B); bench {
		hubOpts.FlushInterval = 500 * time.Millisecond // as shipped
	}
	o.edgeEnv = runHub(t, hubOpts, ln.Addr().String(), "", func(hub *edgehub.Hub, cfg *controllers.Config) {
		src := &kubesource.Source{Client: cached.GetClient(), Authenticate: hub.AuthenticateDevice}
		srv, err := otaserver.New(src.Config(otaserver.Config{CacheDir: filepath.Join(o.dir, "cache"), Log: testLogger(t), Registerer: prometheus.NewRegistry()}))
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(o.hook.wrap(srv.Handler()))
		t.Cleanup(hs.Close)
		o.otaURL, cfg.OTAURL = hs.URL, hs.URL
	})
	o.origin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		img, ok := o.images.Load(strings.TrimPrefix(r.URL.Path, "/images/"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "image.bin", time.Time{}, bytes.NewReader(img.([]byte)))
	}))
	t.Cleanup(o.origin.Close)

	o.initRepository(t)
	if err := os.WriteFile(filepath.Join(o.dir, "root.json"), o.firstRoot, 0o600); err != nil {
		t.Fatal(err)
	}
	o.rootFile = filepath.Join(o.dir, "root.json")
	o.agentBin = buildCommand(t, o.dir, "edge-agent")
	return o
}

// initRepository creates a TUF repository in o.dir with one new key per
// role, a release key, and the ConfigMaps the Firmware refers to (the
// trusted release keys and, on publish, the repository).
func (o *otaEnv) initRepository(t testing.TB) {
	t.Helper()
	keys := map[string]*tuf.PrivateKey{}
	for _, role := range []string{"root", "targets", "snapshot", "timestamp"} {
		k, err := tuf.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[role] = k
	}
	one := func(role string) tuf.RoleKeys {
		return tuf.RoleKeys{Keys: []tuf.Key{keys[role].Public()}, Threshold: 1}
	}
	o.signers = tuf.Signers{
		Root: []*tuf.PrivateKey{keys["root"]}, Targets: []*tuf.PrivateKey{keys["targets"]},
		Snapshot: []*tuf.PrivateKey{keys["snapshot"]}, Timestamp: []*tuf.PrivateKey{keys["timestamp"]},
	}
	var err error
	if o.repo, err = tuf.OpenRepository(filepath.Join(o.dir, "repo")); err != nil {
		t.Fatal(err)
	}
	if err := o.repo.Init(tuf.RootConfig{Root: one("root"), Targets: one("targets"), Snapshot: one("snapshot"), Timestamp: one("timestamp")}, o.signers, time.Now()); err != nil {
		t.Fatal(err)
	}
	files, err := o.repo.Files()
	if err != nil {
		t.Fatal(err)
	}
	o.firstRoot = files[tuf.RootVersionFile(1)]
	o.repoName = otaRepository
	if o.release == nil {
		pub, priv, _ := ed25519.GenerateKey(nil)
		o.release = priv
		keysCM := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: otaReleaseKeys},
			Data:       map[string]string{"release": base64.StdEncoding.EncodeToString(pub)},
		}
		if err := env.Client.Create(context.Background(), keysCM); err != nil {
			t.Fatal(err)
		}
	} else {
		o.repoName = "rogue-repository"
	}
}

// firmwareImage is a firmware-like image: blocks of random data and runs
// of repeated bytes, reproducible from seed.
func firmwareImage(seed uint64, size int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	img := make([]byte, 0, size)
	for len(img) < size {
		n := min(512+r.IntN(4096), size-len(img))
		if r.IntN(4) == 0 {
			img = append(img, bytes.Repeat([]byte{byte(r.IntN(256))}, n)...)
			continue
		}
		for range n {
			img = append(img, byte(r.Uint32()))
		}
	}
	return img
}

// changeImage copies img with about percent of it rewritten in 64-byte runs.
func changeImage(img []byte, percent float64, seed uint64) []byte {
	out := bytes.Clone(img)
	r := rand.New(rand.NewPCG(seed, 2))
	for range int(float64(len(img)) * percent / 100 / 64) {
		at := r.IntN(len(out) - 64)
		for i := range 64 {
			out[at+i] = byte(r.Uint32())
		}
	}
	return out
}

// publish signs image as version into the repository, updates the
// repository ConfigMap and creates the Firmware name rolling it out.
func (o *otaEnv) publish(t testing.TB, name, version string, image []byte, models []string, rollout edgev1alpha1.Rollout) *edgev1alpha1.Firmware {
	t.Helper()
	ctx := context.Background()
	sum := sha256.Sum256(image)
	digest := hex.EncodeToString(sum[:])
	o.images.Store(digest, image)
	target := otaModel + "/" + version + "/image.bin"
	if err := o.repo.AddTarget(target, int64(len(image)), digest, tuf.Firmware{Version: version, Models: []string{otaModel}}); err != nil {
		t.Fatal(err)
	}
	if err := o.repo.Publish(o.signers, time.Now()); err != nil {
		t.Fatal(err)
	}
	files, err := o.repo.Files()
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: o.repoName}, Data: map[string]string{}}
	for k, v := range files {
		cm.Data[k] = string(v)
	}
	err = env.Client.Create(ctx, cm)
	if apierrors.IsAlreadyExists(err) {
		err = env.Client.Update(ctx, cm)
	}
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signing.Sign(o.release, digest)
	if err != nil {
		t.Fatal(err)
	}
	url := o.origin.URL + "/images/" + digest
	fw := &edgev1alpha1.Firmware{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: name},
		Spec: edgev1alpha1.FirmwareSpec{
			Version: version, CompatibleModels: models,
			Artifact: edgev1alpha1.Artifact{URL: &url, SHA256: digest, Size: int64(len(image))},
			Signatures: edgev1alpha1.Signatures{
				TrustedKeys: common.LocalObjectReference{Name: otaReleaseKeys}, Threshold: 1,
				Signatures: []edgev1alpha1.Signature{{KeyID: "release", Value: sig}},
			},
			Metadata: edgev1alpha1.RepositoryTarget{Repository: common.LocalObjectReference{Name: o.repoName}, Target: target},
			Rollout:  rollout,
		},
	}
	if err := env.Client.Create(ctx, fw); err != nil {
		t.Fatal(err)
	}
	return fw
}

func waves(percents ...int32) []edgev1alpha1.Wave {
	var w []edgev1alpha1.Wave
	for _, p := range percents {
		w = append(w, edgev1alpha1.Wave{Percent: p})
	}
	return w
}

// allAtOnce is a maxUnavailable of 100%: a whole wave updates at once.
func allAtOnce() *intstr.IntOrString {
	v := intstr.FromString("100%")
	return &v
}

// devices creates EdgeDevices of model sim and writes their bootstrap
// tokens into dir, one file per device, for --token-dir.
func (o *otaEnv) devices(t testing.TB, dir string, names ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		d := &edgev1alpha1.EdgeDevice{
			ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: name},
			Spec:       edgev1alpha1.EdgeDeviceSpec{Hardware: edgev1alpha1.Hardware{Model: otaModel}, HeartbeatInterval: "1s"},
		}
		if err := env.Client.Create(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		eventually(t, 30*time.Second, func(ctx context.Context) error {
			var s corev1.Secret
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: o.ns, Name: name + "-bootstrap"}, &s); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, name), s.Data["token"], 0o600)
		})
	}
}

// agentProcess is an edge-agent process with OTA on.
type agentProcess struct {
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan error
	// exitErr is how the process ended ("signal: killed" after kill).
	exitErr error
}

// startAgent runs the edge-agent binary for device (a name prefix with
// --simulate) with tokens from tokenDir and state in dataDir.
func (o *otaEnv) startAgent(t testing.TB, device, tokenDir, dataDir string, args ...string) *agentProcess {
	t.Helper()
	p := &agentProcess{logs: &syncBuffer{}, exited: make(chan error, 1)}
	base := []string{
		"--hub", "mqtt://" + o.hubAddr, "--device", o.ns + "/" + device, "--data-dir", dataDir, "--heartbeat", "1s",
		"--ota-root", o.rootFile, "--firmware-version", "1.0.0", "--model", otaModel,
	}
	if !strings.Contains(strings.Join(args, " "), "--simulate") {
		base = append(base, "--token-file", filepath.Join(tokenDir, device))
	} else {
		base = append(base, "--token-dir", tokenDir)
	}
	p.cmd = exec.Command(o.agentBin, append(base, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("edge-agent %s output (tail):\n%s", device, tail(p.logs.String(), 60))
		}
	})
	return p
}

// kill is a power cut: SIGKILL, no chance to finish anything.
func (p *agentProcess) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		p.exitErr = <-p.exited
		p.cmd.ProcessState = &os.ProcessState{}
	}
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// firmwareOf reads a device's reported firmware.
func (o *otaEnv) firmwareOf(ctx context.Context, name string) (*edgev1alpha1.DeviceFirmware, *edgev1alpha1.EdgeDevice, error) {
	d, err := getDevice(ctx, o.ns, name)
	if err != nil {
		return nil, nil, err
	}
	if d.Status.Firmware == nil {
		return nil, d, fmt.Errorf("%s reports no firmware", name)
	}
	return d.Status.Firmware, d, nil
}

// otaHook sits in front of the OTA server: it records requests by device
// and breaks the ones a test asks it to.
type otaHook struct {
	mu       sync.Mutex
	requests []otaRequest
	// cut aborts the device's next image download after this many bytes.
	cut map[string]int64
	// corrupt flips bytes in the deltas sent to these devices.
	corrupt map[string]bool
	// stall holds these devices' image and delta requests until they
	// give up.
	stall map[string]bool
}

func (h *otaHook) stallDownloads(device string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stall == nil {
		h.stall = map[string]bool{}
	}
	h.stall[device] = true
}

type otaRequest struct {
	device, kind, rangeHeader string
	status                    int
}

func (h *otaHook) cutNext(device string, after int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cut == nil {
		h.cut = map[string]int64{}
	}
	h.cut[device] = after
}

func (h *otaHook) corruptDeltas(device string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.corrupt == nil {
		h.corrupt = map[string]bool{}
	}
	h.corrupt[device] = true
}

// seen returns the device's requests of kind.
func (h *otaHook) seen(device, kind string) []otaRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []otaRequest
	for _, r := range h.requests {
		if r.device == device && r.kind == kind {
			out = append(out, r)
		}
	}
	return out
}

func (h *otaHook) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _, _ := r.BasicAuth()
		kind := "metadata"
		switch {
		case strings.Contains(r.URL.Path, "/targets/"):
			kind = "target"
		case strings.Contains(r.URL.Path, "/deltas/"):
			kind = "delta"
		}
		h.mu.Lock()
		cut, cutting := h.cut[user]
		if kind == "target" && cutting {
			delete(h.cut, user)
		}
		corrupt := kind == "delta" && h.corrupt[user]
		stall := kind != "metadata" && h.stall[user]
		h.mu.Unlock()
		if stall {
			<-r.Context().Done()
			return
		}
		rec := &recordingWriter{ResponseWriter: w, status: http.StatusOK}
		switch {
		case kind == "target" && cutting:
			rec.cutAfter = cut
		case corrupt:
			rec.corrupt = true
		}
		defer func() {
			h.mu.Lock()
			h.requests = append(h.requests, otaRequest{device: user, kind: kind, rangeHeader: r.Header.Get("Range"), status: rec.status})
			h.mu.Unlock()
		}()
		next.ServeHTTP(rec, r)
	})
}

// recordingWriter records the status and can cut or corrupt the body.
type recordingWriter struct {
	http.ResponseWriter
	status   int
	written  int64
	cutAfter int64 // > 0: abort the connection after this many bytes
	corrupt  bool
}

func (w *recordingWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	if w.corrupt {
		p = bytes.Clone(p)
		for i := range p {
			if (w.written+int64(i))%997 == 500 {
				p[i] ^= 0xff
			}
		}
	}
	if w.cutAfter > 0 && w.written+int64(len(p)) > w.cutAfter {
		n, _ := w.ResponseWriter.Write(p[:w.cutAfter-w.written])
		w.written += int64(n)
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler) // the connection drops mid-body
	}
	n, err := w.ResponseWriter.Write(p)
	w.written += int64(n)
	return n, err
}
