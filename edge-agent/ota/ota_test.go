package ota

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/cairn-platform/cairn/dataplane/ota/delta"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// repo is a test OTA server: targets/<name>, deltas/<from>/<to>.
type repo struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	targets  map[string][]byte
	deltas   map[string][]byte // "<from>/<to>"
	requests []recorded
	sent     int64 // body bytes sent

	// cutAfter > 0: the first targets/ request is cut after that many bytes.
	cutAfter int
	cut      bool
	// ignoreRange: answer every targets/ request with the whole image.
	ignoreRange bool
	// chunked: with ignoreRange, send without Content-Length.
	chunked bool
	// auth is the expected Authorization header.
	auth string
	// stall holds image and delta requests until the client goes away.
	stall atomic.Bool
}

type recorded struct {
	path, rangeHdr, ifRange, auth string
	status                        int
}

func newRepo(t *testing.T) *repo {
	r := &repo{t: t, targets: map[string][]byte{}, deltas: map[string][]byte{}, auth: "Bearer device-token"}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

type countingWriter struct {
	http.ResponseWriter
	r      *repo
	status int
}

func (c *countingWriter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(b)
	c.r.mu.Lock()
	c.r.sent += int64(n)
	c.r.mu.Unlock()
	return n, err
}

func (r *repo) serve(w http.ResponseWriter, req *http.Request) {
	cw := &countingWriter{ResponseWriter: w, r: r}
	defer func() {
		r.mu.Lock()
		r.requests = append(r.requests, recorded{req.URL.Path, req.Header.Get("Range"), req.Header.Get("If-Range"), req.Header.Get("Authorization"), cw.status})
		r.mu.Unlock()
	}()
	if req.Header.Get("Authorization") != r.auth {
		cw.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.stall.Load() {
		<-req.Context().Done()
		return
	}
	r.mu.Lock()
	var body []byte
	var ok bool
	name, isTarget := strings.CutPrefix(req.URL.Path, "/repo/targets/")
	if isTarget {
		body, ok = r.targets[name]
	} else if d, isDelta := strings.CutPrefix(req.URL.Path, "/repo/deltas/"); isDelta {
		body, ok = r.deltas[d]
	}
	cut := isTarget && r.cutAfter > 0 && !r.cut
	if cut {
		r.cut = true
	}
	ignore, chunked := r.ignoreRange, r.chunked
	r.mu.Unlock()
	if !ok {
		cw.WriteHeader(http.StatusNotFound)
		return
	}
	etag := `"` + sum(body)[:16] + `"`
	switch {
	case cut:
		cw.status = http.StatusOK
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			r.t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nETag: %s\r\nContent-Type: application/octet-stream\r\n\r\n", len(body), etag)
		_, _ = buf.Write(body[:r.cutAfter])
		_ = buf.Flush()
		r.mu.Lock()
		r.sent += int64(r.cutAfter)
		r.mu.Unlock()
	case isTarget && ignore:
		if !chunked {
			cw.Header().Set("Content-Length", fmt.Sprint(len(body)))
		}
		cw.WriteHeader(http.StatusOK)
		for b := body; len(b) > 0; {
			n := min(len(b), 32<<10)
			_, _ = cw.Write(b[:n])
			_ = http.NewResponseController(w).Flush()
			b = b[n:]
		}
	default:
		cw.Header().Set("ETag", etag)
		http.ServeContent(cw, req, "", time.Time{}, bytes.NewReader(body))
	}
}

func (r *repo) url() string { return r.srv.URL + "/repo" }

func (r *repo) log() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.requests...)
}

func (r *repo) bytesSent() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent
}

// resolver is the test's stand-in for the verified TUF metadata.
type resolver map[string]TargetInfo

func (r resolver) Resolve(_ context.Context, _, target string) (TargetInfo, error) {
	ti, ok := r[target]
	if !ok {
		return TargetInfo{}, fmt.Errorf("target %q not in the signed metadata", target)
	}
	return ti, nil
}

// device is a simulated device: a Dir with slot A holding version 1.0.0.
type device struct {
	t        *testing.T
	dir      string
	repo     *repo
	resolver resolver
	health   func(context.Context) error
	// autoReboot makes the bootloader's reboot boot the agent again
	// (Manager.Boot) in the same process.
	autoReboot bool

	mu      sync.Mutex
	reports []protocol.FirmwareState
}

var (
	imageV1 = randomBytes(1, 256<<10)
	imageV2 = func() []byte {
		b := bytes.Clone(imageV1)
		copy(b[100<<10:], randomBytes(2, 2<<10))
		return append(b, randomBytes(3, 1<<10)...)
	}()
)

func newDevice(t *testing.T) *device {
	d := &device{t: t, dir: t.TempDir(), repo: newRepo(t), resolver: resolver{}, autoReboot: true}
	d.writeSlot(SlotA, imageV1, "1.0.0")
	d.publish("fw-2.0.0.img", "2.0.0", imageV2)
	return d
}

func (d *device) writeSlot(slot string, img []byte, version string) {
	dir := filepath.Join(d.dir, "slots", slot)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "image"), img, 0o644); err != nil {
		d.t.Fatal(err)
	}
	if version == "" {
		return
	}
	meta, _ := json.Marshal(slotMeta{Version: version, SHA256: sum(img), Size: int64(len(img))})
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), meta, 0o644); err != nil {
		d.t.Fatal(err)
	}
}

func (d *device) publish(target, version string, img []byte) {
	d.repo.mu.Lock()
	d.repo.targets[target] = img
	d.repo.mu.Unlock()
	d.resolver[target] = TargetInfo{Version: version, Length: int64(len(img)), SHA256: sum(img)}
}

func (d *device) publishDelta(from, to, dl []byte) {
	d.repo.mu.Lock()
	d.repo.deltas[sum(from)+"/"+sum(to)] = dl
	d.repo.mu.Unlock()
}

// manager starts the "agent": a new Manager over the device's Dir.
func (d *device) manager() *Manager {
	d.t.Helper()
	bl := &FileBootloader{Dir: d.dir}
	var m *Manager
	if d.autoReboot {
		bl.RebootFunc = func(ctx context.Context) error {
			_, err := m.Boot(ctx)
			return err
		}
	}
	m, err := New(Config{
		Dir:        d.dir,
		Bootloader: bl,
		Resolver:   d.resolver,
		Prepare: func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer device-token")
		},
		HealthCheck:      d.health,
		Log:              testr.New(d.t),
		HealthTimeout:    5 * time.Second,
		InitialVersion:   "0.1.0",
		ProgressInterval: -1, // every 10% step
		Report: func(s protocol.FirmwareState) {
			d.mu.Lock()
			d.reports = append(d.reports, s)
			d.mu.Unlock()
		},
	})
	if err != nil {
		d.t.Fatal(err)
	}
	m.backoff = time.Millisecond
	return m
}

// boot starts the agent and boots it.
func (d *device) boot() *Manager {
	d.t.Helper()
	m := d.manager()
	if _, err := m.Boot(context.Background()); err != nil {
		d.t.Fatalf("Boot: %v", err)
	}
	return m
}

func (d *device) phases() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, r := range d.reports {
		if len(out) == 0 || out[len(out)-1] != r.Phase {
			out = append(out, r.Phase)
		}
	}
	return out
}

func (d *device) allReports() []protocol.FirmwareState {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]protocol.FirmwareState(nil), d.reports...)
}

func (d *device) bootState() bootState {
	d.t.Helper()
	st, err := (&FileBootloader{Dir: d.dir}).load()
	if err != nil {
		d.t.Fatal(err)
	}
	return st
}

func (d *device) slotImage(slot string) []byte {
	b, err := os.ReadFile(filepath.Join(d.dir, "slots", slot, "image"))
	if err != nil && !os.IsNotExist(err) {
		d.t.Fatal(err)
	}
	return b
}

func (d *device) install(target string) protocol.OTAAssignment {
	return protocol.OTAAssignment{
		Rollout:    "fw:" + sum(d.repo.targets[target])[:12],
		Action:     protocol.OTAInstall,
		Version:    d.resolver[target].Version,
		Target:     target,
		Repository: d.repo.url(),
	}
}

func wantState(t *testing.T, got protocol.FirmwareState, slot, version, phase string) {
	t.Helper()
	if got.Slot != slot || got.Version != version || got.Phase != phase {
		t.Fatalf("state = slot %q version %q phase %q (message %q), want slot %s version %s phase %s",
			got.Slot, got.Version, got.Phase, got.Message, slot, version, phase)
	}
}

func containsInOrder(got []string, want ...string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func TestInstallSuccessWithDelta404(t *testing.T) {
	d := newDevice(t)
	m := d.boot()
	wantState(t, m.State(), SlotA, "1.0.0", "")
	if got := m.State().SHA256; got != sum(imageV1) {
		t.Fatalf("sha256 = %s", got)
	}
	a := d.install("fw-2.0.0.img")
	if err := m.Handle(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	st := m.State()
	wantState(t, st, SlotB, "2.0.0", protocol.PhaseSucceeded)
	if st.Rollout != a.Rollout || st.Action != protocol.OTAInstall || st.SHA256 != sum(imageV2) || st.Delta {
		t.Fatalf("state = %+v", st)
	}
	if !strings.Contains(st.Message, "delta unusable") {
		t.Errorf("message %q does not say the delta was unusable", st.Message)
	}
	if ph := d.phases(); !containsInOrder(ph, "", protocol.PhaseDownloading, protocol.PhaseInstalling, protocol.PhaseRebooting, protocol.PhaseVerifying, protocol.PhaseSucceeded) {
		t.Errorf("phases = %v", ph)
	}
	var progress []int32
	for _, r := range d.allReports() {
		if r.Phase == protocol.PhaseDownloading && r.Progress > 0 {
			progress = append(progress, r.Progress)
		}
		if r.Phase != "" && r.Time.IsZero() {
			t.Errorf("report without time: %+v", r)
		}
	}
	if len(progress) == 0 || progress[len(progress)-1] != 100 {
		t.Errorf("progress reports = %v", progress)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i]%10 != 0 || progress[i] <= progress[i-1] {
			t.Errorf("progress reports = %v, want increasing steps of 10%%", progress)
		}
	}
	log := d.repo.log()
	if len(log) != 2 || !strings.HasPrefix(log[0].path, "/repo/deltas/"+sum(imageV1)+"/") || log[0].status != 404 ||
		log[1].path != "/repo/targets/fw-2.0.0.img" || log[1].status != 200 {
		t.Fatalf("requests = %+v", log)
	}
	if !bytes.Equal(d.slotImage(SlotB), imageV2) || !bytes.Equal(d.slotImage(SlotA), imageV1) {
		t.Fatal("slot contents wrong")
	}
	if bs := d.bootState(); bs.Active != SlotB || bs.Trial != "" {
		t.Fatalf("boot state = %+v", bs)
	}
	// Power cycle: B boots as the committed slot.
	m2 := d.boot()
	wantState(t, m2.State(), SlotB, "2.0.0", protocol.PhaseSucceeded)
	if m2.booted.Trial || m2.booted.FellBack {
		t.Fatalf("second boot = %+v", m2.booted)
	}
	leftovers, _ := filepath.Glob(filepath.Join(d.dir, "downloads", "*"))
	staged, _ := filepath.Glob(filepath.Join(d.dir, "staging", "*"))
	if len(leftovers)+len(staged) != 0 {
		t.Errorf("leftover files: %v %v", leftovers, staged)
	}
}

func TestHealthCheckFailsRollsBack(t *testing.T) {
	d := newDevice(t)
	d.health = func(context.Context) error { return errors.New("service cairn-app did not start") }
	m := d.boot()
	if err := m.Handle(context.Background(), d.install("fw-2.0.0.img")); err != nil {
		t.Fatal(err)
	}
	st := m.State()
	wantState(t, st, SlotA, "1.0.0", protocol.PhaseRolledBack)
	if !strings.Contains(st.Message, "service cairn-app did not start") || !strings.Contains(st.Message, "booted slot A") {
		t.Errorf("message = %q", st.Message)
	}
	if bs := d.bootState(); bs.Active != SlotA || bs.Trial != "" {
		t.Fatalf("boot state = %+v", bs)
	}
	if ph := d.phases(); !containsInOrder(ph, protocol.PhaseRebooting, protocol.PhaseVerifying, protocol.PhaseRolledBack) {
		t.Errorf("phases = %v", ph)
	}
	// The device keeps booting A.
	wantState(t, d.boot().State(), SlotA, "1.0.0", protocol.PhaseRolledBack)
}

func TestPowerLossDuringTrialFallsBack(t *testing.T) {
	d := newDevice(t)
	d.autoReboot = false
	m := d.boot()
	a := d.install("fw-2.0.0.img")
	if err := m.Handle(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	wantState(t, m.State(), SlotA, "1.0.0", protocol.PhaseRebooting)
	if bs := d.bootState(); bs.Trial != SlotB {
		t.Fatalf("boot state = %+v", bs)
	}

	// First boot: the trial of B. The health check hangs; the device
	// loses power before it commits.
	verifying := make(chan struct{})
	d.health = func(ctx context.Context) error {
		close(verifying)
		<-ctx.Done()
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	trial := d.manager()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = trial.Boot(ctx)
	}()
	<-verifying
	wantState(t, trial.State(), SlotB, "2.0.0", protocol.PhaseVerifying)

	// Power comes back: the bootloader falls back to A.
	d.health = nil
	m3 := d.boot()
	st := m3.State()
	wantState(t, st, SlotA, "1.0.0", protocol.PhaseRolledBack)
	if st.Message != "slot B did not commit after its trial boot; booted slot A" {
		t.Errorf("message = %q", st.Message)
	}
	if st.Rollout != a.Rollout {
		t.Errorf("rollout = %q", st.Rollout)
	}
	if bs := d.bootState(); bs.Active != SlotA || bs.Trial != "" {
		t.Fatalf("boot state = %+v", bs)
	}
	// Re-handling the same assignment does not try again.
	n := len(d.repo.log())
	if err := m3.Handle(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if len(d.repo.log()) != n {
		t.Error("re-handling a rolled back job downloaded again")
	}
	cancel()
	<-done
}

func TestInterruptedDownloadResumes(t *testing.T) {
	d := newDevice(t)
	d.repo.cutAfter = 100_000
	m := d.boot()
	if err := m.Handle(context.Background(), d.install("fw-2.0.0.img")); err != nil {
		t.Fatal(err)
	}
	wantState(t, m.State(), SlotB, "2.0.0", protocol.PhaseSucceeded)
	var targets []recorded
	for _, r := range d.repo.log() {
		if strings.HasPrefix(r.path, "/repo/targets/") {
			targets = append(targets, r)
		}
	}
	if len(targets) != 2 {
		t.Fatalf("target requests = %+v", targets)
	}
	if targets[0].rangeHdr != "" || targets[1].rangeHdr != "bytes=100000-" || targets[1].status != http.StatusPartialContent {
		t.Fatalf("target requests = %+v", targets)
	}
	if targets[1].ifRange == "" {
		t.Errorf("resumed request without If-Range")
	}
	if targets[1].auth != "Bearer device-token" {
		t.Errorf("resumed request without credentials")
	}
	if !bytes.Equal(d.slotImage(SlotB), imageV2) {
		t.Fatal("slot B image wrong")
	}
}

func TestResumeAfterRestart(t *testing.T) {
	d := newDevice(t)
	// A partial download from a previous run of the agent.
	m := d.boot()
	a := d.install("fw-2.0.0.img")
	part := m.partPath(sum(imageV2))
	if err := os.WriteFile(part, imageV2[:50_000], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Handle(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	wantState(t, m.State(), SlotB, "2.0.0", protocol.PhaseSucceeded)
	log := d.repo.log()
	if len(log) != 1 || log[0].rangeHdr != "bytes=50000-" || log[0].status != http.StatusPartialContent {
		t.Fatalf("requests = %+v", log)
	}
}

func TestServerIgnoringRangeRestarts(t *testing.T) {
	d := newDevice(t)
	d.repo.cutAfter = 70_000
	d.repo.ignoreRange = true
	m := d.boot()
	if err := m.Handle(context.Background(), d.install("fw-2.0.0.img")); err != nil {
		t.Fatal(err)
	}
	wantState(t, m.State(), SlotB, "2.0.0", protocol.PhaseSucceeded)
	log := d.repo.log()
	last := log[len(log)-1]
	if last.rangeHdr != "bytes=70000-" || last.status != http.StatusOK {
		t.Fatalf("requests = %+v", log)
	}
	if !bytes.Equal(d.slotImage(SlotB), imageV2) {
		t.Fatal("slot B image wrong")
	}
}

func TestDeltaUsed(t *testing.T) {
	d := newDevice(t)
	dl, err := delta.Create(imageV1, imageV2)
	if err != nil {
		t.Fatal(err)
	}
	d.publishDelta(imageV1, imageV2, dl)
	m := d.boot()
	if err := m.Handle(context.Background(), d.install("fw-2.0.0.img")); err != nil {
		t.Fatal(err)
	}
	st := m.State()
	wantState(t, st, SlotB, "2.0.0", protocol.PhaseSucceeded)
	if !st.Delta {
		t.Fatalf("Delta = false: %+v", st)
	}
	for _, r := range d.repo.log() {
		if strings.HasPrefix(r.path, "/repo/targets/") {
			t.Fatalf("full image fetched: %+v", d.repo.log())
		}
	}
	if sent := d.repo.bytesSent(); sent != int64(len(dl)) || sent >= int64(len(imageV2))/10 {
		t.Fatalf("fetched %d bytes (delta %d, image %d)", sent, len(dl), len(imageV2))
	}
	if !bytes.Equal(d.slotImage(SlotB), imageV2) {
		t.Fatal("slot B image wrong")
	}
}

func TestCorruptedDeltaFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delta func([]byte) []byte
	}{
		{"flipped payload byte", func(dl []byte) []byte {
			dl = bytes.Clone(dl)
			dl[len(dl)-10] ^= 0xff
			return dl
		}},
		{"garbage", func([]byte) []byte { return []byte("this is not a delta") }},
		{"wrong base", func([]byte) []byte {
			base := bytes.Clone(imageV1)
			base[0] ^= 1
			dl, err := delta.Create(base, imageV2)
			if err != nil {
				t.Fatal(err)
			}
			return dl
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t)
			dl, err := delta.Create(imageV1, imageV2)
			if err != nil {
				t.Fatal(err)
			}
			d.publishDelta(imageV1, imageV2, tc.delta(dl))
			m := d.boot()
			if err := m.Handle(context.Background(), d.install("fw-2.0.0.img")); err != nil {
				t.Fatal(err)
			}
			st := m.State()
			wantState(t, st, SlotB, "2.0.0", protocol.PhaseSucceeded)
			if st.Delta || !strings.Contains(st.Message, "delta unusable") {
				t.Fatalf("state = %+v", st)
			}
			if !bytes.Equal(d.slotImage(SlotB), imageV2) {
				t.Fatal("slot B image wrong")
			}
		})
	}
}

func TestHashMismatchFails(t *testing.T) {
	d := newDevice(t)
	evil := randomBytes(7, len(imageV2))
	d.repo.targets["fw-2.0.0.img"] = evil // same length, other bytes
	m := d.boot()
	if err := m.Handle(context.Background(), d.install("fw-2.0.0.img")); err != nil {
		t.Fatal(err)
	}
	st := m.State()
	wantState(t, st, SlotA, "1.0.0", protocol.PhaseFailed)
	if !strings.Contains(st.Message, "does not match the signed sha256") {
		t.Errorf("message = %q", st.Message)
	}
	if img := d.slotImage(SlotB); img != nil {
		t.Fatal("slot B was written")
	}
	if _, err := os.Stat(filepath.Join(d.dir, "slots", SlotB, "meta.json")); !os.IsNotExist(err) {
		t.Fatal("slot B has a meta.json")
	}
	if bs := d.bootState(); bs.Active != SlotA || bs.Trial != "" {
		t.Fatalf("boot state = %+v", bs)
	}
	wantState(t, d.boot().State(), SlotA, "1.0.0", protocol.PhaseFailed)
}

func TestLongerBodyRefused(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprint("chunked=", chunked), func(t *testing.T) {
			d := newDevice(t)
			d.repo.targets["fw-2.0.0.img"] = append(bytes.Clone(imageV2), 0)
			d.repo.ignoreRange = true
			d.repo.chunked = chunked
			m := d.boot()
			if err := m.Handle(context.Background(), d.install("fw-2.0.0.img")); err != nil {
				t.Fatal(err)
			}
			st := m.State()
			wantState(t, st, SlotA, "1.0.0", protocol.PhaseFailed)
			if !strings.Contains(st.Message, "263168") {
				t.Errorf("message = %q", st.Message)
			}
			if d.slotImage(SlotB) != nil {
				t.Fatal("slot B was written")
			}
			if n := len(d.repo.log()); n != 2 { // delta 404 + one image request, no retries
				t.Errorf("%d requests", n)
			}
		})
	}
}

func TestCanceledDownloadResumesOnNextHandle(t *testing.T) {
	d := newDevice(t)
	d.repo.cutAfter = 120_000
	m := d.boot()
	a := d.install("fw-2.0.0.img")
	ctx, cancel := context.WithCancel(context.Background())
	m.backoff = time.Hour // the retry waits; the agent stops meanwhile
	done := make(chan error)
	go func() { done <- m.Handle(ctx, a) }()
	// Wait until the cut-off part is on disk (the client then waits for
	// its retry).
	part := m.partPath(sum(imageV2))
	for {
		if fi, err := os.Stat(part); err == nil && fi.Size() == 120_000 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("canceled Handle returned nil")
	}
	wantState(t, m.State(), SlotA, "1.0.0", protocol.PhaseDownloading)

	m2 := d.boot()
	m2.backoff = time.Millisecond
	if st := m2.State(); st.Phase != protocol.PhaseDownloading || st.Rollout != a.Rollout {
		t.Fatalf("state after restart = %+v", st)
	}
	if err := m2.Handle(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	wantState(t, m2.State(), SlotB, "2.0.0", protocol.PhaseSucceeded)
	log := d.repo.log()
	if last := log[len(log)-1]; last.rangeHdr != "bytes=120000-" || last.status != http.StatusPartialContent {
		t.Fatalf("requests = %+v", log)
	}
}

func TestDowngradeRefused(t *testing.T) {
	d := newDevice(t)
	d.publish("fw-0.9.0.img", "0.9.0", randomBytes(5, 1000))
	m := d.boot()
	if err := m.Handle(context.Background(), d.install("fw-0.9.0.img")); err != nil {
		t.Fatal(err)
	}
	st := m.State()
	wantState(t, st, SlotA, "1.0.0", protocol.PhaseFailed)
	if st.Message != "refusing to downgrade from 1.0.0 to 0.9.0" {
		t.Errorf("message = %q", st.Message)
	}
	if n := len(d.repo.log()); n != 0 {
		t.Errorf("%d requests", n)
	}
}

func TestAlreadyRunning(t *testing.T) {
	d := newDevice(t)
	d.publish("fw-1.0.0.img", "1.0.0", imageV1)
	m := d.boot()
	if err := m.Handle(context.Background(), d.install("fw-1.0.0.img")); err != nil {
		t.Fatal(err)
	}
	wantState(t, m.State(), SlotA, "1.0.0", protocol.PhaseSucceeded)
	if n := len(d.repo.log()); n != 0 {
		t.Errorf("%d requests", n)
	}
}

func TestFactoryImage(t *testing.T) {
	d := newDevice(t)
	d.writeSlot(SlotA, imageV1, "") // no meta.json
	_ = os.Remove(filepath.Join(d.dir, "slots", SlotA, "meta.json"))
	m := d.boot()
	st := m.State()
	wantState(t, st, SlotA, "0.1.0", "")
	if st.SHA256 != sum(imageV1) {
		t.Fatalf("sha256 = %q", st.SHA256)
	}
	if err := m.Handle(context.Background(), d.install("fw-2.0.0.img")); err != nil {
		t.Fatal(err)
	}
	wantState(t, m.State(), SlotB, "2.0.0", protocol.PhaseSucceeded)
}

func TestRollbackAction(t *testing.T) {
	d := newDevice(t)
	m := d.boot()
	a := d.install("fw-2.0.0.img")
	if err := m.Handle(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	wantState(t, m.State(), SlotB, "2.0.0", protocol.PhaseSucceeded)

	rb := a
	rb.Action = protocol.OTARollback
	if err := m.Handle(context.Background(), rb); err != nil {
		t.Fatal(err)
	}
	st := m.State()
	wantState(t, st, SlotA, "1.0.0", protocol.PhaseRolledBack)
	if st.Message != "rolled back to 1.0.0 in slot A" || st.Action != protocol.OTARollback || st.Rollout != a.Rollout {
		t.Errorf("state = %+v", st)
	}
	if bs := d.bootState(); bs.Active != SlotA || bs.Trial != "" {
		t.Fatalf("boot state = %+v", bs)
	}
	wantState(t, d.boot().State(), SlotA, "1.0.0", protocol.PhaseRolledBack)

	// Again: already done, re-reported.
	n := len(d.allReports())
	if err := m.Handle(context.Background(), rb); err != nil {
		t.Fatal(err)
	}
	if len(d.allReports()) != n+1 {
		t.Error("not re-reported")
	}
}

func TestRollbackWhenNotUpdated(t *testing.T) {
	d := newDevice(t)
	d.health = func(context.Context) error { return errors.New("unhealthy") }
	m := d.boot()
	a := d.install("fw-2.0.0.img")
	if err := m.Handle(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	wantState(t, m.State(), SlotA, "1.0.0", protocol.PhaseRolledBack)
	rb := a
	rb.Action = protocol.OTARollback
	if err := m.Handle(context.Background(), rb); err != nil {
		t.Fatal(err)
	}
	st := m.State()
	wantState(t, st, SlotA, "1.0.0", protocol.PhaseRolledBack)
	if !strings.Contains(st.Message, "already running the previous firmware 1.0.0 in slot A") {
		t.Errorf("message = %q", st.Message)
	}
}

func TestRollbackWithoutPreviousSlot(t *testing.T) {
	d := newDevice(t)
	m := d.boot()
	err := m.Handle(context.Background(), protocol.OTAAssignment{Rollout: "fw:abc", Action: protocol.OTARollback, Version: "2.0.0", Repository: d.repo.url()})
	if err != nil {
		t.Fatal(err)
	}
	st := m.State()
	wantState(t, st, SlotA, "1.0.0", protocol.PhaseFailed)
	if !strings.Contains(st.Message, "no previous firmware") {
		t.Errorf("message = %q", st.Message)
	}
}

func TestIdempotentReHandle(t *testing.T) {
	d := newDevice(t)
	m := d.boot()
	a := d.install("fw-2.0.0.img")
	if err := m.Handle(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	requests := len(d.repo.log())
	reports := len(d.allReports())

	// Same process and after a restart.
	for _, mm := range []*Manager{m, d.boot()} {
		if err := mm.Handle(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(d.repo.log()); n != requests {
		t.Errorf("re-handle made %d requests", n-requests)
	}
	all := d.allReports()
	if len(all) <= reports {
		t.Fatal("not re-reported")
	}
	for _, r := range all[reports:] {
		if r.Phase != protocol.PhaseSucceeded || r.Rollout != a.Rollout || r.Slot != SlotB {
			t.Errorf("re-report = %+v", r)
		}
	}
}

func TestHandleBeforeBoot(t *testing.T) {
	d := newDevice(t)
	if err := d.manager().Handle(context.Background(), d.install("fw-2.0.0.img")); err == nil {
		t.Fatal("Handle before Boot succeeded")
	}
}

func TestExecBootloader(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "bootctl")
	logf := filepath.Join(dir, "calls")
	err := os.WriteFile(script, []byte(`#!/bin/sh
echo "$@" >> "`+logf+`"
case "$1" in
booted) echo '{"slot":"B","trial":true}' ;;
try-boot|commit) [ "$2" = A ] || [ "$2" = B ] || { echo "no such slot: $2" >&2; exit 3; } ;;
reboot) ;;
*) echo "unknown command $1" >&2; exit 2 ;;
esac
`), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	bl := &ExecBootloader{Command: script}
	info, err := bl.Boot()
	if err != nil {
		t.Fatal(err)
	}
	if info != (BootInfo{Slot: SlotB, Trial: true}) {
		t.Fatalf("info = %+v", info)
	}
	if err := bl.TryBoot(SlotA); err != nil {
		t.Fatal(err)
	}
	if err := bl.Commit(SlotB); err != nil {
		t.Fatal(err)
	}
	if err := bl.Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	err = bl.Commit("C")
	if err == nil || !strings.Contains(err.Error(), "no such slot: C") {
		t.Fatalf("err = %v", err)
	}
	calls, err := os.ReadFile(logf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(calls), "booted\ntry-boot A\ncommit B\nreboot\ncommit C\n"; got != want {
		t.Fatalf("calls = %q, want %q", got, want)
	}
	var _ Bootloader = bl
	var _ Bootloader = &FileBootloader{}
}

func TestExecBootloaderDrivesManager(t *testing.T) {
	// The ExecBootloader behind a Manager: a script that keeps its state
	// in a file, like fw_setenv would.
	d := newDevice(t)
	state := filepath.Join(d.dir, "env")
	script := filepath.Join(d.dir, "bootctl")
	err := os.WriteFile(script, []byte(`#!/bin/sh
env="`+state+`"
[ -f "$env" ] || echo "A" > "$env"
case "$1" in
booted) printf '{"slot":"%s"}\n' "$(cat "$env")" ;;
try-boot) echo "$2" > "$env.try" ;;
commit) echo "$2" > "$env" ;;
reboot) ;;
esac
`), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Dir: d.dir, Bootloader: &ExecBootloader{Command: script}, Resolver: d.resolver,
		Prepare: func(r *http.Request) { r.Header.Set("Authorization", "Bearer device-token") }})
	if err != nil {
		t.Fatal(err)
	}
	m.backoff = time.Millisecond
	st, err := m.Boot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantState(t, st, SlotA, "1.0.0", "")
	if err := m.Handle(context.Background(), d.install("fw-2.0.0.img")); err != nil {
		t.Fatal(err)
	}
	wantState(t, m.State(), SlotA, "1.0.0", protocol.PhaseRebooting)
	if b, _ := os.ReadFile(state + ".try"); strings.TrimSpace(string(b)) != SlotB {
		t.Fatalf("try-boot not called: %q", b)
	}
}

func TestSemver(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0},
		{"v1.0.0", "1.0.0+build.5", 0},
		{"1.0.0", "2.0.0", -1},
		{"1.10.0", "1.9.0", 1},
		{"1.0.0-alpha", "1.0.0", -1},
		{"1.0.0-alpha", "1.0.0-alpha.1", -1},
		{"1.0.0-alpha.1", "1.0.0-alpha.beta", -1},
		{"1.0.0-beta.2", "1.0.0-beta.11", -1},
		{"1.0.0-rc.1", "1.0.0-beta.11", 1},
	} {
		got, err := compareVersions(tc.a, tc.b)
		if err != nil || got != tc.want {
			t.Errorf("compare(%s, %s) = %d, %v; want %d", tc.a, tc.b, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "1.0", "1.0.x", "1.0.0-", "1.0.0-a..b"} {
		if _, err := parseSemver(bad); err == nil {
			t.Errorf("parseSemver(%q) succeeded", bad)
		}
	}
}

func TestRedact(t *testing.T) {
	got := redact("https://user:secret@ota.example/repo/targets/x?token=abc")
	if strings.Contains(got, "secret") || strings.Contains(got, "abc") {
		t.Fatalf("redact = %q", got)
	}
}

func TestRollbackFailingHealthCheckStaysOnNewSlot(t *testing.T) {
	d := newDevice(t)
	m := d.boot()
	a := d.install("fw-2.0.0.img")
	if err := m.Handle(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	wantState(t, m.State(), SlotB, "2.0.0", protocol.PhaseSucceeded)
	m.cfg.HealthCheck = func(context.Context) error { return errors.New("old firmware cannot reach the hub") }
	rb := a
	rb.Action = protocol.OTARollback
	if err := m.Handle(context.Background(), rb); err != nil {
		t.Fatal(err)
	}
	st := m.State()
	wantState(t, st, SlotB, "2.0.0", protocol.PhaseFailed)
	if !strings.Contains(st.Message, "old firmware cannot reach the hub") {
		t.Errorf("message = %q", st.Message)
	}
	if bs := d.bootState(); bs.Active != SlotB || bs.Trial != "" {
		t.Fatalf("boot state = %+v", bs)
	}
}

func TestHealthCheckTimeout(t *testing.T) {
	d := newDevice(t)
	d.health = func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}
	m := d.manager()
	m.cfg.HealthTimeout = 50 * time.Millisecond
	if _, err := m.Boot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Handle(context.Background(), d.install("fw-2.0.0.img")); err != nil {
		t.Fatal(err)
	}
	st := m.State()
	wantState(t, st, SlotA, "1.0.0", protocol.PhaseRolledBack)
	if !strings.Contains(st.Message, "did not pass within 50ms") {
		t.Errorf("message = %q", st.Message)
	}
}

func TestCancelStopsADownloadButNotATrialBoot(t *testing.T) {
	d := newDevice(t)
	m := d.manager()
	if _, err := m.Boot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m.Cancel("nothing to cancel") {
		t.Fatal("Cancel without a job reported a cancellation")
	}
	// The download never finishes: the context is cancelled as the hub
	// withdraws the assignment.
	d.repo.stall.Store(true)
	a := d.install("fw-2.0.0.img")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Handle(ctx, a) }()
	waitPhase(t, m, protocol.PhaseDownloading)
	cancel()
	if err := <-done; err == nil {
		t.Fatal("Handle returned no error after its context was cancelled")
	}
	if !m.Cancel("the assignment was withdrawn") {
		t.Fatal("Cancel did not cancel a download")
	}
	st := m.State()
	if st.Phase != protocol.PhaseFailed || st.Message != "canceled: the assignment was withdrawn" || st.Slot != SlotA {
		t.Fatalf("state %+v", st)
	}
	// Finished: a second Cancel, or Handle of the same assignment, changes nothing.
	if m.Cancel("again") {
		t.Fatal("Cancel cancelled a finished job")
	}
}

// waitPhase waits until the manager reports phase.
func waitPhase(t *testing.T, m *Manager, phase string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for m.State().Phase != phase {
		if time.Now().After(deadline) {
			t.Fatalf("phase %q, want %q", m.State().Phase, phase)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
