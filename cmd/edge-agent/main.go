// Command edge-agent runs on a device (or, with --simulate, as many virtual
// devices): it joins the Cairn edge hub and keeps the device twin in sync.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cairn-platform/cairn/edge-agent/agent"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
	"github.com/cairn-platform/cairn/internal/version"
)

func main() {
	var (
		hub, device, token, tokenFile, tokenDir, dataDir string
		ebpfInterface, joinPassword, metricsAddr         string
		heartbeat, metricsInterval                       time.Duration
		simulate                                         int
		ota                                              otaFlags
	)
	flag.StringVar(&hub, "hub", "", "Edge hub URL: mqtt://host:1883 or ws://host:port/.")
	flag.StringVar(&device, "device", "", "This device's EdgeDevice, <namespace>/<name>; with --simulate, the name is a prefix.")
	flag.StringVar(&token, "token", os.Getenv("CAIRN_BOOTSTRAP_TOKEN"), "Bootstrap token to join with (default $CAIRN_BOOTSTRAP_TOKEN); not needed once joined.")
	flag.StringVar(&tokenFile, "token-file", "", "File holding the bootstrap token.")
	flag.StringVar(&joinPassword, "join-password", os.Getenv("CAIRN_JOIN_PASSWORD"), "Password of the shared join account when the hub sits behind an external broker (default $CAIRN_JOIN_PASSWORD).")
	flag.StringVar(&tokenDir, "token-dir", "", "With --simulate: directory with one token file per device, named after the device.")
	flag.StringVar(&dataDir, "data-dir", "/var/lib/cairn-agent", "Where the twin store and the credential live.")
	flag.DurationVar(&heartbeat, "heartbeat", 30*time.Second, "Interval of the state heartbeat.")
	flag.StringVar(&ebpfInterface, "ebpf-interface", "", "Network interface the eBPF packet counter and filter attach to (TCX, ingress and egress); empty runs without it.")
	flag.DurationVar(&metricsInterval, "metrics-interval", 30*time.Second, "Interval of the packet counter reports.")
	flag.StringVar(&metricsAddr, "metrics-address", "", "Address to serve Prometheus metrics on (/metrics), e.g. :9101; empty disables it.")
	flag.IntVar(&simulate, "simulate", 0, "Run this many virtual devices <name>-0 … <name>-(N-1), each with its own session and store under --data-dir.")
	ota.register(flag.CommandLine)
	echoDesired := flag.Bool("echo-desired", false, "Report every desired property k back as the reported property echo.k whenever the desired properties change (benchmarks and tests of the twin round trip).")
	verbose := flag.Bool("v", false, "Log debug messages.")
	flag.Parse()
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	// slog keeps the device binary small: no Kubernetes logging stack.
	log := logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	metrics := agent.NewMetrics(prometheus.DefaultRegisterer)
	if metricsAddr != "" {
		go serveMetrics(ctx, log, metricsAddr)
	}
	err := run(ctx, log, metrics, hub, device, token, tokenFile, tokenDir, dataDir, ebpfInterface, joinPassword, heartbeat, metricsInterval, simulate, *echoDesired, ota)
	stop()
	if err != nil {
		log.Error(err, "edge-agent failed")
		os.Exit(1)
	}
}

func run(ctx context.Context, log logr.Logger, metrics *agent.Metrics, hub, device, token, tokenFile, tokenDir, dataDir, ebpfInterface, joinPassword string, heartbeat, metricsInterval time.Duration, simulate int, echoDesired bool, otaFlags otaFlags) error {
	if simulate > 0 && ebpfInterface != "" {
		return errors.New("--ebpf-interface and --simulate exclude each other: virtual devices share the host's interfaces")
	}
	hubURL, err := url.Parse(hub)
	if err != nil || hubURL.Host == "" {
		return fmt.Errorf("--hub %q: want mqtt://host:port or ws://host:port/", hub)
	}
	base, err := protocol.ParseDevice(device)
	if err != nil {
		return fmt.Errorf("--device: %w", err)
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	devices := []protocol.Device{base}
	if simulate > 0 {
		devices = devices[:0]
		for i := range simulate {
			devices = append(devices, protocol.Device{Namespace: base.Namespace, Name: fmt.Sprintf("%s-%d", base.Name, i)})
		}
	}
	log.Info("starting edge-agent", "version", version.Version, "hub", hubURL.Redacted(), "devices", len(devices))
	var wg sync.WaitGroup
	errs := make(chan error, len(devices))
	for _, dev := range devices {
		devToken, dir := token, dataDir
		if simulate > 0 {
			dir = filepath.Join(dataDir, dev.Name)
			if tokenDir != "" {
				if b, err := os.ReadFile(filepath.Join(tokenDir, dev.Name)); err == nil {
					devToken = strings.TrimSpace(string(b))
				}
			}
		}
		cfg := agent.Config{
			Hub: hubURL, Device: dev, BootstrapToken: devToken, DataDir: dir,
			Version: version.Version, Heartbeat: heartbeat, Log: log,
			PacketFilterInterface: ebpfInterface, MetricsInterval: metricsInterval, JoinPassword: joinPassword,
			Metrics: metrics,
		}
		if cfg.OTA, err = otaFlags.config(dev, dir); err != nil {
			return fmt.Errorf("device %s: %w", dev, err)
		}
		var a *agent.Agent
		if echoDesired {
			// OnDesired runs in the MQTT receive path: SetReported waits for
			// its PUBACK, so it must not run there.
			cfg.OnDesired = func(desired map[string]json.RawMessage) {
				go func() {
					for k, v := range desired {
						if err := a.SetReported(ctx, "echo."+k, v); err != nil {
							log.Error(err, "echoing a desired property", "device", dev.String(), "property", k)
						}
					}
				}()
			}
		}
		a, err := agent.New(cfg)
		if err != nil {
			return fmt.Errorf("device %s: %w", dev, err)
		}
		wg.Go(func() {
			defer func() { _ = a.Close() }()
			if err := a.Run(ctx); err != nil {
				errs <- fmt.Errorf("device %s: %w", dev, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// serveMetrics serves /metrics until ctx ends.
func serveMetrics(ctx context.Context, log logr.Logger, addr string) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error(err, "serving metrics", "address", addr)
	}
}
