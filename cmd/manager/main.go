// Command manager runs Cairn's control plane: every controller, with metrics,
// health probes, leader election and tracing.
package main

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"os"

	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/cairn-platform/cairn/controllers"
	"github.com/cairn-platform/cairn/internal/telemetry"
	"github.com/cairn-platform/cairn/internal/version"
)

func main() {
	var (
		metricsAddr   string
		metricsSecure bool
		probeAddr     string
		pprofAddr     string
		leaderElect   bool
		leaderElectNS string
		otlpEndpoint  string
		otlpInsecure  bool
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "Address of the Prometheus metrics endpoint; \"0\" disables it.")
	flag.BoolVar(&metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS, authenticated and authorized against the API server (TokenReview + SubjectAccessReview).")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Address of the pprof endpoint; empty (the default) disables it.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so that only one replica reconciles.")
	flag.StringVar(&leaderElectNS, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's namespace).")
	flag.StringVar(&otlpEndpoint, "otlp-endpoint", os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "OTLP gRPC collector (host:port) to export traces to; empty keeps traces in-process.")
	flag.BoolVar(&otlpInsecure, "otlp-insecure", false, "Connect to the OTLP collector without TLS.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	log.Info("starting Cairn manager", "version", version.Version, "commit", version.Commit)

	ctx := ctrl.SetupSignalHandler()
	shutdownTracing, err := telemetry.Setup(ctx, telemetry.Config{
		ServiceName: "cairn-manager", ServiceVersion: version.Version,
		OTLPEndpoint: otlpEndpoint, Insecure: otlpInsecure,
	})
	if err != nil {
		log.Error(err, "setting up tracing")
		os.Exit(1)
	}
	defer func() {
		if err := shutdownTracing(context.Background()); err != nil {
			log.Error(err, "flushing traces")
		}
	}()

	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: metricsSecure}
	if metricsSecure {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                        controllers.NewScheme(),
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        probeAddr,
		PprofBindAddress:              pprofAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              "manager.cairn.dev",
		LeaderElectionNamespace:       leaderElectNS,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		log.Error(err, "creating manager")
		os.Exit(1)
	}
	if err := controllers.SetupAll(mgr); err != nil {
		log.Error(err, "setting up controllers")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "adding health check")
		os.Exit(1)
	}
	// Ready once the informer caches have synced: before that, reconcilers
	// would act on an empty view of the cluster.
	if err := mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return errors.New("informer caches have not synced")
		}
		return nil
	}); err != nil {
		log.Error(err, "adding ready check")
		os.Exit(1)
	}

	log.Info("starting controllers")
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "manager stopped with an error")
		os.Exit(1)
	}
	log.Info("manager stopped")
}
