// Command funchost runs Cairn Functions in the cluster: it loads the
// Functions placed in the cluster into a wazero host and serves them over
// HTTP, behind the gateway. Every replica serves: there is no leader.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/funchost"
	"github.com/cairn-platform/cairn/dataplane/funchost/hostsync"
	"github.com/cairn-platform/cairn/internal/kube"
	"github.com/cairn-platform/cairn/internal/telemetry"
	"github.com/cairn-platform/cairn/internal/version"
)

// shutdownTimeout bounds draining HTTP requests and closing Functions.
const shutdownTimeout = 20 * time.Second

type options struct {
	httpAddr    string
	cacheDir    string
	probeAddr   string
	metricsAddr string
	hostName    string
	namespaces  string

	otlpEndpoint string
	otlpInsecure bool
}

func main() {
	hostName, _ := os.Hostname()
	var o options
	flag.StringVar(&o.httpAddr, "http-bind-address", ":8080", "Address the Functions are served on.")
	flag.StringVar(&o.cacheDir, "cache-dir", defaultCacheDir(), "Directory of the on-disk compilation cache.")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8082", "Address of the /healthz and /readyz endpoints.")
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", "0", "Address of the controller-runtime Prometheus metrics endpoint; \"0\" disables it.")
	flag.StringVar(&o.hostName, "host-name", hostName, "Name of this host in Function status messages.")
	flag.StringVar(&o.namespaces, "watch-namespaces", "", "Comma-separated namespaces whose Functions this host serves; empty serves every namespace.")
	flag.StringVar(&o.otlpEndpoint, "otlp-endpoint", os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "OTLP gRPC collector (host:port) to export invocation spans to; empty keeps traces in-process.")
	flag.BoolVar(&o.otlpInsecure, "otlp-insecure", false, "Connect to the OTLP collector without TLS.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		ctrl.Log.Error(err, "function host failed")
		os.Exit(1)
	}
}

// defaultCacheDir is $XDG_CACHE_HOME/cairn/funchost, or /tmp/cairn-funchost.
func defaultCacheDir() string {
	if dir := os.Getenv("XDG_CACHE_HOME"); dir != "" {
		return filepath.Join(dir, "cairn", "funchost")
	}
	return filepath.Join(os.TempDir(), "cairn-funchost")
}

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(serverlessv1alpha1.AddToScheme(s))
	return s
}

func run(ctx context.Context, o options) (err error) {
	log := ctrl.Log.WithName("setup")
	log.Info("starting Cairn function host", "version", version.Version, "commit", version.Commit, "host", o.hostName)

	shutdownTracing, err := telemetry.Setup(ctx, telemetry.Config{
		ServiceName: "cairn-funchost", ServiceVersion: version.Version,
		OTLPEndpoint: o.otlpEndpoint, Insecure: o.otlpInsecure,
	})
	if err != nil {
		return fmt.Errorf("setting up tracing: %w", err)
	}
	defer func() {
		if err := shutdownTracing(context.Background()); err != nil {
			log.Error(err, "flushing traces")
		}
	}()

	if err := os.MkdirAll(o.cacheDir, 0o700); err != nil {
		return fmt.Errorf("creating cache dir: %w", err)
	}
	// Invocation metrics are served with controller-runtime's, on
	// --metrics-bind-address.
	host, err := funchost.New(ctx, funchost.Options{
		CacheDir: o.cacheDir, Logger: ctrl.Log.WithName("funchost"), Registerer: ctrlmetrics.Registry,
	})
	if err != nil {
		return err
	}
	registry := hostsync.NewRegistry()
	defer func() {
		// Functions first, once their requests are done, then the runtime.
		closeCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		err = errors.Join(err, registry.Close(closeCtx), host.Close(closeCtx))
	}()

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	var cacheOpts cache.Options
	if o.namespaces != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for ns := range strings.SplitSeq(o.namespaces, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				cacheOpts.DefaultNamespaces[ns] = cache.Config{}
			}
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 newScheme(),
		Cache:                  cacheOpts,
		Metrics:                metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress: o.probeAddr,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	rec := &hostsync.Reconciler{
		Client:   mgr.GetClient(),
		Reader:   mgr.GetAPIReader(),
		Host:     host,
		Registry: registry,
		HostName: o.hostName,
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the function sync: %w", err)
	}
	srv := &httpServer{addr: o.httpAddr, handler: registry, ready: make(chan struct{})}
	if err := mgr.Add(srv); err != nil {
		return fmt.Errorf("adding the HTTP server: %w", err)
	}
	if err := kube.AddProbes(mgr, func() error {
		if !srv.listening() {
			return errors.New("not serving HTTP yet")
		}
		return nil
	}, rec.Synced); err != nil {
		return err
	}

	log.Info("starting")
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running function host: %w", err)
	}
	log.Info("function host stopped")
	return nil
}

// httpServer serves the Functions until the manager stops, then drains.
type httpServer struct {
	addr    string
	handler http.Handler
	ready   chan struct{}
}

func (s *httpServer) listening() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

func (s *httpServer) Start(ctx context.Context) error {
	lis, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listening for HTTP on %s: %w", s.addr, err)
	}
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	ctrl.Log.WithName("http").Info("serving functions", "address", lis.Addr().String())
	close(s.ready)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	select {
	case err := <-served:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("draining HTTP requests: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving HTTP: %w", err)
	}
	return nil
}

// NeedLeaderElection is false: every host serves.
func (*httpServer) NeedLeaderElection() bool { return false }
