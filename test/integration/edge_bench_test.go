package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/controllers"
	"github.com/cairn-platform/cairn/dataplane/edgehub"
	xdsserver "github.com/cairn-platform/cairn/dataplane/xds/server"
	"github.com/cairn-platform/cairn/edge-agent/agent"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
	"github.com/cairn-platform/cairn/internal/testenv"
)

// BenchmarkEdgeFleet runs a fleet of simulated devices (edge-agent
// --simulate, in separate processes) against an in-process manager with the
// edge hub, and reports per fleet run (one op; run with -benchtime=1x
// -count=N for spread):
//
//   - connect-s: agent processes started → the hub's
//     cairn_edgehub_connected_devices gauge reaches N (includes every
//     device's join: the fleet is fresh);
//   - online-s: agent processes started → all N EdgeDevices show
//     Online=True in a watch (includes the hub's batched status writes);
//   - rt-p50-ms, rt-p99-ms, rt-max-ms: twin round trip for M = min(N, 1000)
//     devices chosen evenly: a JSON merge patch of spec.desired.seq returns →
//     a watch shows status.reported["echo.seq"] with that value (API server →
//     hub reconciler → MQTT → agent (bbolt fsync, --echo-desired echoes it,
//     another fsync) → MQTT → hub merge → batched status patch → watch).
//     Updates are paced at CAIRN_FLEET_TWIN_RATE per second (default 50)
//     by 8 parallel updaters; rt-lost counts echoes not seen within 2 min;
//   - desired-p50-ms, desired-p99-ms: the same patch → the watch shows
//     status.desired.seq with the value: the hub's status write of the spec
//     change, the device not involved (if the echo made it into the same
//     status patch, both times are equal);
//   - mqtt-p50-ms, mqtt-p99-ms: the MQTT leg alone, measured during the
//     twin phase by a probe device (a raw MQTT v5 client with a joined
//     device's credential) that publishes a full twin message and waits for
//     the hub's full answer: device → hub merge → device, no API server;
//   - hub-queue-mean-ms, hub-reconcile-mean-ms: the hub reconciler's mean
//     work-queue wait and reconcile time during the twin phase;
//   - status-write-errors: failed hub status patches (conflicts) in the run;
//   - hub-cores-connect, hub-cores-steady, hub-cores-twin: CPU of this test
//     process (getrusage RUSAGE_SELF: the manager with the hub, plus this
//     benchmark's own watch and updaters; not the API server, etcd or the
//     agents) per wall second, during connect (start → all online), during a
//     steady window of CAIRN_FLEET_STEADY (default 30s, one heartbeat
//     interval: every device sends one state message) after all are
//     online, and during the twin phase;
//   - apiserver-cores-connect, apiserver-cores-steady: kube-apiserver + etcd
//     (envtest children of this process), same windows;
//   - heap-MiB, heap-KiB/device: Go HeapInuse after a GC with the fleet
//     connected minus before the manager started: the hub plus the
//     manager's informer caches (N EdgeDevices, 2N Secrets);
//   - agent-RSS-MiB (sum of VmRSS of the agent processes after the steady
//     window), agent-cores-connect, agent-cores-steady;
//   - msgs/s-connect, msgs/s-steady: cairn_edgehub_messages_total (all
//     topics) per second over those windows.
//
// CAIRN_FLEET_CPUPROFILE=path writes this process's CPU profile of the
// steady and twin phases to path.<run>.
//
// Fleet sizes come from CAIRN_FLEET_SIZES (comma separated, default
// "1000,10000"); each agent process runs at most 5000 virtual devices (two
// file descriptors each: its TCP connection and its bbolt file). The
// manager gets its own rest.Config with QPS 500 / Burst 1000 (the shipped
// defaults are --kube-api-qps=100 --kube-api-burst=200) and the hub its
// default status FlushInterval (500ms). Logs of the manager and the agents
// go to files in the benchmark's temp dir; their tails are shown on failure.
func BenchmarkEdgeFleet(b *testing.B) {
	if errors.Is(startErr, testenv.ErrNoAssets) {
		b.Skip(startErr.Error())
	}
	if startErr != nil {
		b.Fatalf("control plane did not start: %v", startErr)
	}
	sizes := os.Getenv("CAIRN_FLEET_SIZES")
	if sizes == "" {
		sizes = "1000,10000"
	}
	bin := buildCommand(b, b.TempDir(), "edge-agent")
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			b.Fatalf("CAIRN_FLEET_SIZES: %q is not a size", s)
		}
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			results := map[string][]float64{}
			for b.Loop() {
				for k, v := range fleetRun(b, bin, n, int(fleetRuns.Add(1))) {
					results[k] = append(results[k], v)
				}
			}
			for k, vs := range results {
				var sum float64
				for _, v := range vs {
					sum += v
				}
				b.ReportMetric(sum/float64(len(vs)), k)
			}
			b.ReportMetric(0, "ns/op") // an op is a whole fleet run
		})
	}
}

// fleetRuns numbers the fleet runs of the process (logs, unique values).
var fleetRuns atomic.Int64

// fleetProbeName is the device of the MQTT probe; no agent runs it.
const fleetProbeName = "probe"

// fleetDevicesPerProcess bounds the virtual devices of one agent process.
const fleetDevicesPerProcess = 5000

func fleetEnvDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	return d
}

// fleetRun is one fleet run; it returns the metrics of the run.
func fleetRun(b *testing.B, bin string, n, run int) map[string]float64 {
	steady := fleetEnvDuration(b, "CAIRN_FLEET_STEADY", 30*time.Second)
	twinRate := 50.0
	if v := os.Getenv("CAIRN_FLEET_TWIN_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 {
			b.Fatalf("CAIRN_FLEET_TWIN_RATE %q", v)
		}
		twinRate = r
	}
	res := map[string]float64{}
	dir := b.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Logs go to a file: b.Log would print thousands of lines.
	logPath := filepath.Join(dir, "manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	log := logr.FromSlogHandler(slog.NewJSONHandler(logFile, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var agentLogs []string
	fail := func(format string, args ...any) {
		b.Helper()
		for _, p := range append([]string{logPath}, agentLogs...) {
			b.Logf("--- tail of %s:\n%s", p, fleetTail(p, 30))
		}
		b.Fatalf(format, args...)
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapInuse

	// The manager with the hub, as cmd/manager wires it, with a higher
	// client-side rate limit.
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 500, 1000
	skip := true
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 controllers.NewScheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             ctrlconfig.Controller{SkipNameValidation: &skip},
		Logger:                 log,
	})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	hub, err := edgehub.New(edgehub.Options{
		TCPListener: ln, Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Log: log, Registerer: reg,
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := controllers.SetupAll(mgr, controllers.Config{XDS: xdsserver.New(log), EdgeHub: hub}); err != nil {
		b.Fatal(err)
	}
	mgrCtx, stopMgr := context.WithCancel(context.Background())
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()
	defer func() {
		stopMgr()
		if err := <-mgrDone; err != nil {
			// At 10k devices the hub's last status flush (every device
			// went offline) outlasts the manager's 30s shutdown grace
			// period: worth knowing, not a failed measurement.
			b.Logf("stopping the manager: %v", err)
		}
	}()
	hubAddr := ln.Addr().String()

	// The benchmark's own client: not rate limited in practice.
	ccfg := rest.CopyConfig(env.Config)
	ccfg.QPS, ccfg.Burst = 2000, 4000
	c, err := client.NewWithWatch(ccfg, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		b.Fatal(err)
	}
	ns := fmt.Sprintf("fleet-%d-%d", n, time.Now().UnixNano()%1_000_000)
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}

	// Names: agent process p runs <prefix p>-0 … ; prefixes a, b, …
	type proc struct {
		prefix string
		count  int
	}
	var procs []proc
	var names []string
	for left, p := n, 0; left > 0; p++ {
		cnt := min(left, fleetDevicesPerProcess)
		pr := proc{prefix: string(rune('a' + p)), count: cnt}
		procs = append(procs, pr)
		for i := range cnt {
			names = append(names, fmt.Sprintf("%s-%d", pr.prefix, i))
		}
		left -= cnt
	}
	const probeName = fleetProbeName

	// Create the EdgeDevices, 16 at a time.
	createStart := time.Now()
	fleetParallel(b, 16, append(slices.Clone(names), probeName), func(name string) error {
		d := &edgev1alpha1.EdgeDevice{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       edgev1alpha1.EdgeDeviceSpec{Hardware: edgev1alpha1.Hardware{Model: "sim"}, HeartbeatInterval: "30s"},
		}
		return c.Create(ctx, d)
	})
	defer func() {
		// envtest runs no garbage collector or namespace controller: delete
		// what this run made, or the next run's caches hold it. The manager
		// stops first: it need not reconcile the deletions.
		stopMgr()
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer dcancel()
		_ = c.DeleteAllOf(dctx, &edgev1alpha1.EdgeDevice{}, client.InNamespace(ns))
		_ = c.DeleteAllOf(dctx, &corev1.Secret{}, client.InNamespace(ns))
		_ = c.Delete(dctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}()
	tokens := map[string]string{}
	deadline := time.Now().Add(10 * time.Minute)
	for len(tokens) < n+1 {
		if time.Now().After(deadline) {
			fail("%d of %d bootstrap Secrets after 10 minutes", len(tokens), n+1)
		}
		time.Sleep(time.Second)
		var secrets corev1.SecretList
		if err := c.List(ctx, &secrets, client.InNamespace(ns)); err != nil {
			b.Logf("listing Secrets: %v", err)
			continue
		}
		for _, s := range secrets.Items {
			if name, ok := strings.CutSuffix(s.Name, "-bootstrap"); ok && len(s.Data["token"]) > 0 {
				tokens[name] = string(s.Data["token"])
			}
		}
	}
	res["create-s"] = time.Since(createStart).Seconds()
	tokenDir, dataDir := filepath.Join(dir, "tokens"), filepath.Join(dir, "data")
	for _, d := range []string{tokenDir, dataDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(tokenDir, name), []byte(tokens[name]), 0o600); err != nil {
			b.Fatal(err)
		}
	}

	// Watch the EdgeDevices: Online conditions and echoed twin values.
	w := newFleetWatch(b, ctx, c, ns)

	// The probe device joins in-process, then leaves: its credential is
	// used by a raw MQTT client later.
	probeDir := filepath.Join(dir, probeName)
	probeCred := fleetJoinProbe(b, ctx, hubAddr, ns, probeName, tokens[probeName], probeDir)

	// Start the agents.
	apiPids := fleetChildren("kube-apiserver", "etcd")
	var agentProcs []*exec.Cmd
	exited := make(chan string, len(procs))
	t0 := time.Now()
	ru0, api0, msgs0 := fleetRusage(), fleetPidsCPU(apiPids), fleetMessages(reg)
	for _, p := range procs {
		lp := filepath.Join(dir, "agent-"+p.prefix+".log")
		agentLogs = append(agentLogs, lp)
		f, err := os.Create(lp)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		cmd := exec.Command(bin, "--hub", "mqtt://"+hubAddr, "--device", ns+"/"+p.prefix,
			"--simulate", strconv.Itoa(p.count), "--token-dir", tokenDir, "--data-dir", dataDir,
			"--heartbeat", "30s", "--echo-desired")
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		agentProcs = append(agentProcs, cmd)
		go func() {
			err := cmd.Wait()
			exited <- fmt.Sprintf("agent process %s exited: %v", p.prefix, err)
		}()
	}
	defer func() {
		for _, cmd := range agentProcs {
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
	}()
	agentPids := make([]int, len(agentProcs))
	for i, cmd := range agentProcs {
		agentPids[i] = cmd.Process.Pid
	}
	agent0 := fleetPidsCPU(agentPids)
	var connectT, onlineT time.Duration
	deadline = time.Now().Add(10 * time.Minute)
	for connectT == 0 || onlineT == 0 {
		select {
		case msg := <-exited:
			fail("%s", msg)
		case <-time.After(100 * time.Millisecond):
		}
		if connectT == 0 && fleetGauge(reg, "cairn_edgehub_connected_devices") >= float64(n) {
			connectT = time.Since(t0)
		}
		if onlineT == 0 && w.onlineCount() >= n {
			onlineT = time.Since(t0)
		}
		if time.Now().After(deadline) {
			fail("after 10 minutes: %v devices connected to the hub, %d online in the API; want %d",
				fleetGauge(reg, "cairn_edgehub_connected_devices"), w.onlineCount(), n)
		}
	}
	ru1, api1, msgs1, agent1 := fleetRusage(), fleetPidsCPU(apiPids), fleetMessages(reg), fleetPidsCPU(agentPids)
	wall := time.Since(t0).Seconds()
	res["connect-s"] = connectT.Seconds()
	res["online-s"] = onlineT.Seconds()
	res["hub-cores-connect"] = (ru1 - ru0) / wall
	res["apiserver-cores-connect"] = (api1 - api0) / wall
	res["agent-cores-connect"] = (agent1 - agent0) / wall
	res["msgs/s-connect"] = (msgs1 - msgs0) / wall

	// Steady: nothing but heartbeats (every 30 s per device).
	stopProfile := func() {}
	if path := os.Getenv("CAIRN_FLEET_CPUPROFILE"); path != "" {
		// This process's CPU profile over the steady and twin phases.
		f, err := os.Create(fmt.Sprintf("%s.%d", path, run))
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		stopProfile = sync.OnceFunc(func() { pprof.StopCPUProfile(); f.Close() })
		defer stopProfile()
	}
	time.Sleep(steady)
	ru2, api2, msgs2, agent2 := fleetRusage(), fleetPidsCPU(apiPids), fleetMessages(reg), fleetPidsCPU(agentPids)
	wall = steady.Seconds()
	res["hub-cores-steady"] = (ru2 - ru1) / wall
	res["apiserver-cores-steady"] = (api2 - api1) / wall
	res["agent-cores-steady"] = (agent2 - agent1) / wall
	res["msgs/s-steady"] = (msgs2 - msgs1) / wall
	var rss float64
	for _, pid := range agentPids {
		rss += fleetRSS(pid)
	}
	res["agent-RSS-MiB"] = rss / (1 << 20)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap := float64(ms.HeapInuse) - float64(heapBefore)
	res["heap-MiB"] = heap / (1 << 20)
	res["heap-KiB/device"] = heap / 1024 / float64(n)

	// The twin round trip, with the MQTT probe running alongside.
	m := min(n, 1000)
	targets := make([]string, m)
	for i := range m {
		targets[i] = names[i*n/m]
	}
	mqttLat := make(chan []time.Duration, 1)
	probeCtx, stopProbe := context.WithCancel(ctx)
	go func() { mqttLat <- fleetProbe(b, probeCtx, hubAddr, ns, probeName, probeCred) }()
	ru3, msgs3 := fleetRusage(), fleetMessages(reg)
	queue3, reconcile3 := fleetHubHistogram("workqueue_queue_duration_seconds", "name"), fleetHubHistogram("controller_runtime_reconcile_time_seconds", "controller")
	twinStart := time.Now()
	sent := make([]time.Time, m)
	work := make(chan int)
	var wg sync.WaitGroup
	var patchErrs atomic.Int64
	for range 8 {
		wg.Go(func() {
			for i := range work {
				val := strconv.Itoa(run*1_000_000 + i + 1)
				w.expect(targets[i], val)
				patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"desired":{"seq":`+val+`}}}`))
				obj := &edgev1alpha1.EdgeDevice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: targets[i]}}
				if err := c.Patch(ctx, obj, patch); err != nil {
					patchErrs.Add(1)
					b.Logf("patching %s: %v", targets[i], err)
					continue
				}
				sent[i] = time.Now()
			}
		})
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / twinRate))
	for i := range m {
		<-tick.C
		work <- i
	}
	tick.Stop()
	close(work)
	wg.Wait()
	deadline = time.Now().Add(2 * time.Minute)
	for w.arrivedCount() < m-int(patchErrs.Load()) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	stopProbe()
	stopProfile()
	twinWall := time.Since(twinStart).Seconds()
	ru4, msgs4 := fleetRusage(), fleetMessages(reg)
	res["hub-cores-twin"] = (ru4 - ru3) / twinWall
	// The hub reconciler's mean queue wait and reconcile time during the
	// twin phase (controller-runtime's global metrics: this manager's).
	queue4, reconcile4 := fleetHubHistogram("workqueue_queue_duration_seconds", "name"), fleetHubHistogram("controller_runtime_reconcile_time_seconds", "controller")
	if dc := queue4[1] - queue3[1]; dc > 0 {
		res["hub-queue-mean-ms"] = (queue4[0] - queue3[0]) / dc * 1e3
	}
	if dc := reconcile4[1] - reconcile3[1]; dc > 0 {
		res["hub-reconcile-mean-ms"] = (reconcile4[0] - reconcile3[0]) / dc * 1e3
	}
	res["msgs/s-twin"] = (msgs4 - msgs3) / twinWall
	var lat, desiredLat []time.Duration
	lost := 0
	for i, name := range targets {
		at, desiredAt, ok := w.arrival(name)
		if !ok || sent[i].IsZero() {
			lost++
			continue
		}
		lat = append(lat, max(at.Sub(sent[i]), 0))
		if !desiredAt.IsZero() {
			desiredLat = append(desiredLat, max(desiredAt.Sub(sent[i]), 0))
		}
	}
	if len(lat) == 0 {
		fail("no twin round trip completed (%d patch errors)", patchErrs.Load())
	}
	slices.Sort(lat)
	res["rt-p50-ms"] = fleetMs(fleetPercentile(lat, 50))
	res["rt-p99-ms"] = fleetMs(fleetPercentile(lat, 99))
	res["rt-max-ms"] = fleetMs(lat[len(lat)-1])
	res["rt-lost"] = float64(lost)
	if len(desiredLat) > 0 {
		slices.Sort(desiredLat)
		res["desired-p50-ms"] = fleetMs(fleetPercentile(desiredLat, 50))
		res["desired-p99-ms"] = fleetMs(fleetPercentile(desiredLat, 99))
	}
	if ml := <-mqttLat; len(ml) > 0 {
		slices.Sort(ml)
		res["mqtt-p50-ms"] = fleetMs(fleetPercentile(ml, 50))
		res["mqtt-p99-ms"] = fleetMs(fleetPercentile(ml, 99))
	}
	conflicts := fleetCounterLabel(reg, "cairn_edgehub_status_writes_total", "result", "error")
	res["status-write-errors"] = conflicts
	b.Logf("run %d, %d devices: created in %.1fs; connect %.1fs, online %.1fs; twin rt p50 %.0fms p99 %.0fms max %.0fms (%d lost); status writes ok %v, error %v",
		run, n, res["create-s"], res["connect-s"], res["online-s"], res["rt-p50-ms"], res["rt-p99-ms"], res["rt-max-ms"], lost,
		fleetCounterLabel(reg, "cairn_edgehub_status_writes_total", "result", "ok"), conflicts)
	return res
}

// fleetWatch follows a namespace's EdgeDevices.
type fleetWatch struct {
	mu       sync.Mutex
	online   map[string]bool
	expected map[string]string
	arrived  map[string]time.Time
	// desired: when status.desired showed the expected value (the hub's
	// write of the spec change, before the device answered).
	desired map[string]time.Time
}

func newFleetWatch(b *testing.B, ctx context.Context, c client.WithWatch, ns string) *fleetWatch {
	w := &fleetWatch{online: map[string]bool{}, expected: map[string]string{}, arrived: map[string]time.Time{}, desired: map[string]time.Time{}}
	var list edgev1alpha1.EdgeDeviceList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		b.Fatal(err)
	}
	rv := list.ResourceVersion
	for i := range list.Items {
		w.observe(&list.Items[i])
	}
	go func() {
		for ctx.Err() == nil {
			wi, err := c.Watch(ctx, &edgev1alpha1.EdgeDeviceList{}, client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range wi.ResultChan() {
				if ev.Type == watch.Error {
					break
				}
				if d, ok := ev.Object.(*edgev1alpha1.EdgeDevice); ok {
					rv = d.ResourceVersion
					w.observe(d)
				}
			}
			wi.Stop()
		}
	}()
	return w
}

func (w *fleetWatch) observe(d *edgev1alpha1.EdgeDevice) {
	if d.Name == fleetProbeName {
		return
	}
	now := time.Now()
	c := meta.FindStatusCondition(d.Status.Conditions, "Online")
	w.mu.Lock()
	defer w.mu.Unlock()
	w.online[d.Name] = c != nil && c.Status == metav1.ConditionTrue
	if want, ok := w.expected[d.Name]; ok {
		if _, done := w.arrived[d.Name]; !done && string(d.Status.Reported["echo.seq"].Raw) == want {
			w.arrived[d.Name] = now
		}
		if _, done := w.desired[d.Name]; !done && string(d.Status.Desired["seq"].Raw) == want {
			w.desired[d.Name] = now
		}
	}
}

func (w *fleetWatch) onlineCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, on := range w.online {
		if on {
			n++
		}
	}
	return n
}

func (w *fleetWatch) expect(name, val string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expected[name] = val
}

func (w *fleetWatch) arrivedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.arrived)
}

func (w *fleetWatch) arrival(name string) (echo, desired time.Time, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	echo, ok = w.arrived[name]
	return echo, w.desired[name], ok
}

// fleetJoinProbe joins the probe device with an in-process agent and
// returns its credential; the agent is stopped again.
func fleetJoinProbe(b *testing.B, ctx context.Context, hubAddr, ns, name, token, dir string) string {
	u, _ := url.Parse("mqtt://" + hubAddr)
	a, err := agent.New(agent.Config{Hub: u, Device: protocol.Device{Namespace: ns, Name: name}, BootstrapToken: token,
		DataDir: dir, Version: "probe", RetryDelay: 200 * time.Millisecond, Log: logr.Discard()})
	if err != nil {
		b.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(actx) }()
	deadline := time.Now().Add(time.Minute)
	for !a.Connected() {
		if time.Now().After(deadline) {
			b.Fatal("the probe device did not connect within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	_ = a.Close()
	cred, err := os.ReadFile(filepath.Join(dir, "credential"))
	if err != nil {
		b.Fatal(err)
	}
	return string(cred)
}

// fleetProbe measures the MQTT leg: a full twin message from the probe
// device, answered by the hub's full twin, every 100ms until ctx ends.
func fleetProbe(b *testing.B, ctx context.Context, hubAddr, ns, name, cred string) []time.Duration {
	dev := protocol.Device{Namespace: ns, Name: name}
	conn, err := net.Dial("tcp", hubAddr)
	if err != nil {
		b.Logf("probe: %v", err)
		return nil
	}
	defer conn.Close()
	answers := make(chan struct{}, 16)
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			if pr.Packet.Topic == dev.Topic(protocol.TwinDown) {
				select {
				case answers <- struct{}{}:
				default:
				}
			}
			return true, nil
		},
	}})
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ack, err := c.Connect(cctx, &paho.Connect{ClientID: dev.String(), Username: dev.String(), UsernameFlag: true,
		Password: []byte(cred), PasswordFlag: true, KeepAlive: 30, CleanStart: true})
	if err != nil || ack.ReasonCode != 0 {
		b.Logf("probe connect: %v %+v", err, ack)
		return nil
	}
	defer func() { _ = c.Disconnect(&paho.Disconnect{}) }()
	if _, err := c.Subscribe(cctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: dev.Topic(protocol.TwinDown), QoS: 1}}}); err != nil {
		b.Logf("probe subscribe: %v", err)
		return nil
	}
	var lat []time.Duration
	for i := 0; ctx.Err() == nil; i++ {
		// Drain what the session delivered before.
		for len(answers) > 0 {
			<-answers
		}
		now := time.Now()
		payload := fmt.Sprintf(`{"kind":"full","from":%q,"entries":{"reported/probe":{"v":%d,"s":{"w":%d,"l":0,"n":%q}}}}`,
			dev.String(), i, now.UnixNano(), dev.String())
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.Publish(pctx, &paho.Publish{Topic: dev.Topic(protocol.TwinUp), QoS: 1, Payload: []byte(payload)})
		if err == nil {
			select {
			case <-answers:
				lat = append(lat, time.Since(now))
			case <-pctx.Done():
			}
		}
		pcancel()
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return lat
}

func fleetParallel(b *testing.B, workers int, items []string, f func(string) error) {
	work := make(chan string)
	var wg sync.WaitGroup
	var firstErr error
	var once sync.Once
	for range workers {
		wg.Go(func() {
			for it := range work {
				if err := f(it); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("%s: %w", it, err) })
				}
			}
		})
	}
	for _, it := range items {
		work <- it
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}

// fleetRusage is this process's CPU time in seconds.
func fleetRusage() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// fleetChildren are the pids of this process's children with these
// command names (envtest's kube-apiserver and etcd).
func fleetChildren(comms ...string) []int {
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := fleetStat(pid)
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == self && slices.Contains(comms, f[0]) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// fleetStat returns the fields of /proc/pid/stat as [comm, ppid, pgrp, …]:
// field i (i >= 4) of proc(5) is at index i-3; the state is dropped.
func fleetStat(pid int) []string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(raw)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return nil
	}
	rest := strings.Fields(s[end+1:]) // state, ppid, ...
	if len(rest) < 13 {
		return nil
	}
	return append([]string{s[open+1 : end]}, rest[1:]...) // comm, ppid(4), pgrp(5), ...
}

// fleetPidsCPU is the summed user+system CPU seconds of processes.
func fleetPidsCPU(pids []int) float64 {
	var sum float64
	for _, pid := range pids {
		f := fleetStat(pid)
		if len(f) < 13 {
			continue
		}
		// utime is field 14 and stime 15 of proc(5): f[14-3], f[15-3].
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		sum += (ut + st) / 100 // USER_HZ
	}
	return sum
}

// fleetRSS is a process's VmRSS in bytes.
func fleetRSS(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

func fleetGauge(reg *prometheus.Registry, name string) float64 {
	families, _ := reg.Gather()
	for _, f := range families {
		if f.GetName() == name {
			var sum float64
			for _, m := range f.GetMetric() {
				sum += m.GetGauge().GetValue()
			}
			return sum
		}
	}
	return 0
}

// fleetMessages is the hub's count of device messages.
func fleetMessages(reg *prometheus.Registry) float64 {
	return fleetCounterLabel(reg, "cairn_edgehub_messages_total", "", "")
}

func fleetCounterLabel(reg *prometheus.Registry, name, label, value string) float64 {
	families, _ := reg.Gather()
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if label != "" {
				for _, l := range m.GetLabel() {
					if l.GetName() == label && l.GetValue() != value {
						continue series
					}
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// fleetHubHistogram is [sum, count] of a controller-runtime histogram for
// the edgehub controller (labelled by label).
func fleetHubHistogram(name, label string) [2]float64 {
	const value = "edgehub"
	families, _ := ctrlmetrics.Registry.Gather()
	var out [2]float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					out[0] += m.GetHistogram().GetSampleSum()
					out[1] += float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
	}
	return out
}

func fleetPercentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

func fleetMs(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

// fleetTail is the last lines of a file.
func fleetTail(path string, lines int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	return strings.Join(all[max(len(all)-lines, 0):], "\n")
}
