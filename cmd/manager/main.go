// Command manager runs Cairn's control plane: every controller, with metrics,
// health probes, leader election and tracing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/cairn-platform/cairn/controllers"
	"github.com/cairn-platform/cairn/controllers/serverless"
	"github.com/cairn-platform/cairn/dataplane/authz"
	"github.com/cairn-platform/cairn/dataplane/edgehub"
	"github.com/cairn-platform/cairn/dataplane/gitops/webhook"
	"github.com/cairn-platform/cairn/dataplane/ota/kubesource"
	otaserver "github.com/cairn-platform/cairn/dataplane/ota/server"
	"github.com/cairn-platform/cairn/dataplane/scan/scanapi"
	xdsserver "github.com/cairn-platform/cairn/dataplane/xds/server"
	"github.com/cairn-platform/cairn/dataplane/xds/translate"
	"github.com/cairn-platform/cairn/internal/grpcserve"
	"github.com/cairn-platform/cairn/internal/httpserve"
	"github.com/cairn-platform/cairn/internal/kube"
	"github.com/cairn-platform/cairn/internal/telemetry"
	"github.com/cairn-platform/cairn/internal/version"
)

type options struct {
	metricsAddr   string
	metricsSecure bool
	probeAddr     string
	pprofAddr     string
	leaderElect   bool
	leaderElectNS string
	otlpEndpoint  string
	otlpInsecure  bool

	xdsAddr          string
	authzBindAddr    string
	listenerPort     uint
	functionHostAddr string
	ociPollInterval  time.Duration
	hubMQTTAddr      string
	hubWSAddr        string
	hubDataDir       string
	hubExternal      string
	hubExternalUser  string
	kubeQPS          float64
	kubeBurst        int
	authzAddr        string
	tracingAddr      string
	tracingPercent   float64
	otaAddr          string
	gitWebhookAddr   string
	gitCheckoutDir   string
	scannerURL       string
	scannerTokenFile string
	otaPublicURL     string
	otaCacheDir      string
	otaCacheBytes    int64
}

func main() {
	var o options
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "Address of the Prometheus metrics endpoint; \"0\" disables it.")
	flag.BoolVar(&o.metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS, authenticated and authorized against the API server (TokenReview + SubjectAccessReview).")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.StringVar(&o.pprofAddr, "pprof-bind-address", "", "Address of the pprof endpoint; empty (the default) disables it.")
	flag.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so that only one replica reconciles.")
	flag.StringVar(&o.leaderElectNS, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's namespace).")
	flag.StringVar(&o.otlpEndpoint, "otlp-endpoint", os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "OTLP gRPC collector (host:port) to export traces to; empty keeps traces in-process.")
	flag.BoolVar(&o.otlpInsecure, "otlp-insecure", false, "Connect to the OTLP collector without TLS.")
	flag.StringVar(&o.xdsAddr, "xds-bind-address", ":18000", "Address of the xDS (ADS) gRPC server that gateways connect to.")
	flag.StringVar(&o.authzBindAddr, "authz-bind-address", ":18001", "Address of the ext_authz gRPC service (OAuth2 introspection for AuthPolicies); empty disables it.")
	flag.UintVar(&o.listenerPort, "gateway-listener-port", 10080, "Port of the HTTP listener sent to Envoy gateways.")
	flag.StringVar(&o.functionHostAddr, "function-host-address", "", "host:port of the function hosts, for Routes to Functions; empty leaves such Routes unaccepted.")
	flag.DurationVar(&o.ociPollInterval, "oci-poll-interval", serverless.DefaultOCIPollInterval, "How often the OCI tags of Functions' modules are resolved again.")
	flag.StringVar(&o.hubExternal, "edge-hub-external-broker", "", "mqtt://host:port of a mosquitto broker with the dynamic security plugin to use instead of the embedded hub; the password of --edge-hub-external-username comes from $CAIRN_BROKER_PASSWORD, the join account's from $CAIRN_BROKER_JOIN_PASSWORD.")
	flag.StringVar(&o.hubExternalUser, "edge-hub-external-username", "cairn-hub", "Username of the hub on the external broker (it needs the dynamic security admin role).")
	flag.Float64Var(&o.kubeQPS, "kube-api-qps", 100, "Queries per second to the API server (client-side limit); fleets of thousands of devices write status often.")
	flag.IntVar(&o.kubeBurst, "kube-api-burst", 200, "Burst of queries to the API server above --kube-api-qps.")
	flag.StringVar(&o.hubMQTTAddr, "edge-hub-mqtt-address", ":1883", "Address of the edge hub's MQTT (TCP) listener; empty disables the edge hub.")
	flag.StringVar(&o.hubWSAddr, "edge-hub-websocket-address", "", "Address of the edge hub's MQTT-over-WebSocket listener; empty disables it.")
	flag.StringVar(&o.hubDataDir, "edge-hub-data-dir", "", "Directory persisting MQTT sessions and in-flight QoS 1 messages; empty keeps them in memory.")
	flag.StringVar(&o.authzAddr, "authz-address", "", "host:port of the ext_authz service, for AuthPolicies with oauth2Introspection.")
	flag.StringVar(&o.tracingAddr, "gateway-tracing-address", "", "host:port of an OTLP/gRPC collector that Envoy gateways send spans to; empty disables gateway tracing.")
	flag.Float64Var(&o.tracingPercent, "gateway-tracing-sample-percent", 1, "Percentage of gateway requests traced.")
	zapOpts := zap.Options{}
	flag.StringVar(&o.otaAddr, "ota-bind-address", ":8090", "Address of the OTA server devices download firmware metadata, images and deltas from (needs the edge hub, which checks device credentials); empty disables it.")
	flag.StringVar(&o.otaPublicURL, "ota-public-url", "", "Base URL devices reach the OTA server at (http://cairn-ota.cairn-system.svc:8090); empty leaves Firmware rollouts waiting.")
	flag.StringVar(&o.otaCacheDir, "ota-cache-dir", filepath.Join(os.TempDir(), "cairn-ota"), "Directory caching firmware images and the binary deltas built between them.")
	flag.Int64Var(&o.otaCacheBytes, "ota-cache-max-bytes", 4<<30, "Size above which the least recently used cached images and deltas are removed; 0 keeps everything.")
	flag.StringVar(&o.gitWebhookAddr, "gitops-webhook-bind-address", ":9292", "Address of the receiver git servers send push webhooks to (POST /hooks/gitrepos/<namespace>/<name>); empty disables it.")
	flag.StringVar(&o.gitCheckoutDir, "gitops-checkout-dir", filepath.Join(os.TempDir(), "cairn-gitops"), "Directory holding each GitRepo's last fetched revision, re-applied on every resync.")
	flag.StringVar(&o.scannerURL, "scanner-url", "", "Base URL of the scanner service (cmd/scanner) that GitRepos with a scanPolicy have their images scanned by; empty leaves them waiting (the gate fails closed).")
	flag.StringVar(&o.scannerTokenFile, "scanner-token-file", "", "File with the bearer token the scanner expects (mount a Secret); empty sends none.")
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		ctrl.Log.Error(err, "manager failed")
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	log := ctrl.Log.WithName("setup")
	log.Info("starting Cairn manager", "version", version.Version, "commit", version.Commit)

	shutdownTracing, err := telemetry.Setup(ctx, telemetry.Config{
		ServiceName: "cairn-manager", ServiceVersion: version.Version,
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

	metricsOpts := metricsserver.Options{BindAddress: o.metricsAddr, SecureServing: o.metricsSecure}
	if o.metricsSecure {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(o.kubeQPS), o.kubeBurst
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        controllers.NewScheme(),
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        o.probeAddr,
		PprofBindAddress:              o.pprofAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              "manager.cairn.dev",
		LeaderElectionNamespace:       o.leaderElectNS,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	gatewayOpts, err := o.gatewayOptions()
	if err != nil {
		return err
	}
	xds := xdsserver.New(ctrl.Log.WithName("xds"))
	if err := xds.RegisterMetrics(ctrlmetrics.Registry); err != nil {
		return fmt.Errorf("registering xDS metrics: %w", err)
	}
	if err := mgr.Add(xdsRunnable{xds, o.xdsAddr}); err != nil {
		return fmt.Errorf("adding xDS server: %w", err)
	}
	ctrlCfg := controllers.Config{XDS: xds, Gateway: gatewayOpts, OCIPollInterval: o.ociPollInterval, GitCheckoutDir: o.gitCheckoutDir}
	if o.scannerURL != "" {
		sc := &scanapi.Client{BaseURL: o.scannerURL, HTTP: &http.Client{Timeout: 5 * time.Minute}}
		if o.scannerTokenFile != "" {
			token, err := os.ReadFile(o.scannerTokenFile)
			if err != nil {
				return fmt.Errorf("--scanner-token-file: %w", err)
			}
			sc.Token = strings.TrimSpace(string(token))
		}
		ctrlCfg.ImageScanner = sc
	}
	if o.gitWebhookAddr != "" {
		receiver, err := webhook.New(webhook.Options{Client: mgr.GetClient(), Log: ctrl.Log.WithName("gitops-webhook"), Registerer: ctrlmetrics.Registry})
		if err != nil {
			return fmt.Errorf("creating the GitOps webhook receiver: %w", err)
		}
		if err := mgr.Add(httpRunnable{name: "gitops-webhook", addr: o.gitWebhookAddr, handler: receiver.Handler()}); err != nil {
			return fmt.Errorf("adding the GitOps webhook receiver: %w", err)
		}
	}
	if o.authzBindAddr != "" {
		authzSrv, err := authz.New(authz.WithLogger(ctrl.Log.WithName("authz")), authz.WithRegisterer(ctrlmetrics.Registry))
		if err != nil {
			return fmt.Errorf("creating authorization service: %w", err)
		}
		if err := mgr.Add(grpcRunnable{name: "ext_authz", addr: o.authzBindAddr, register: authzSrv.Register}); err != nil {
			return fmt.Errorf("adding authorization service: %w", err)
		}
		ctrlCfg.Authz = authzSrv
	}
	if o.hubMQTTAddr != "" || o.hubExternal != "" {
		hubOpts := edgehub.Options{
			TCPAddress: o.hubMQTTAddr, WebSocketAddress: o.hubWSAddr, DataDir: o.hubDataDir,
			Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
			Log: ctrl.Log, Registerer: ctrlmetrics.Registry,
		}
		if o.hubExternal != "" {
			u, err := url.Parse(o.hubExternal)
			if err != nil || u.Host == "" {
				return fmt.Errorf("--edge-hub-external-broker %q: want mqtt://host:port", o.hubExternal)
			}
			// Passwords come from the environment (a Secret), never flags.
			hubOpts.External = &edgehub.ExternalBroker{
				URL: u, Username: o.hubExternalUser,
				Password: os.Getenv("CAIRN_BROKER_PASSWORD"), JoinPassword: os.Getenv("CAIRN_BROKER_JOIN_PASSWORD"),
			}
			if hubOpts.External.Password == "" || hubOpts.External.JoinPassword == "" {
				return errors.New("--edge-hub-external-broker needs $CAIRN_BROKER_PASSWORD and $CAIRN_BROKER_JOIN_PASSWORD")
			}
		}
		hub, err := edgehub.New(hubOpts)
		if err != nil {
			return fmt.Errorf("creating the edge hub: %w", err)
		}
		ctrlCfg.EdgeHub = hub
		if o.otaAddr != "" {
			src := &kubesource.Source{Client: mgr.GetClient(), Authenticate: hub.AuthenticateDevice}
			ota, err := otaserver.New(src.Config(otaserver.Config{
				CacheDir: o.otaCacheDir, MaxCacheBytes: o.otaCacheBytes,
				Log: ctrl.Log.WithName("ota"), Registerer: ctrlmetrics.Registry,
			}))
			if err != nil {
				return fmt.Errorf("creating the OTA server: %w", err)
			}
			if err := mgr.Add(httpRunnable{name: "ota", addr: o.otaAddr, handler: ota.Handler()}); err != nil {
				return fmt.Errorf("adding the OTA server: %w", err)
			}
			ctrlCfg.OTAURL = o.otaPublicURL
		}
	}
	if err := controllers.SetupAll(mgr, ctrlCfg); err != nil {
		return err
	}
	if err := kube.AddProbes(mgr); err != nil {
		return err
	}

	log.Info("starting controllers")
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running manager: %w", err)
	}
	log.Info("manager stopped")
	return nil
}

func (o options) gatewayOptions() (translate.Options, error) {
	opts := translate.Options{ListenerPort: uint32(o.listenerPort)}
	var err error
	if opts.FunctionHost, err = parseAddress("--function-host-address", o.functionHostAddr); err != nil {
		return opts, err
	}
	if opts.Authz, err = parseAddress("--authz-address", o.authzAddr); err != nil {
		return opts, err
	}
	collector, err := parseAddress("--gateway-tracing-address", o.tracingAddr)
	if err != nil {
		return opts, err
	}
	if collector != nil {
		opts.Tracing = &translate.Tracing{Collector: *collector, ServiceName: "cairn-gateway", SamplePercent: o.tracingPercent}
	}
	return opts, nil
}

// parseAddress reads an optional host:port flag.
func parseAddress(flagName, value string) (*translate.Address, error) {
	if value == "" {
		return nil, nil
	}
	host, port, err := net.SplitHostPort(value)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", flagName, value, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || host == "" {
		return nil, fmt.Errorf("%s=%q: want host:port", flagName, value)
	}
	return &translate.Address{Host: host, Port: uint32(p)}, nil
}

// grpcRunnable serves a gRPC service on every replica until the manager stops.
type grpcRunnable struct {
	name     string
	addr     string
	register func(grpc.ServiceRegistrar)
}

func (g grpcRunnable) Start(ctx context.Context) error {
	srv := grpc.NewServer()
	g.register(srv)
	ctrl.Log.WithName(g.name).Info("serving", "address", g.addr)
	return grpcserve.Serve(ctx, g.name, g.addr, srv)
}

func (grpcRunnable) NeedLeaderElection() bool { return false }

// httpRunnable serves HTTP on every replica until the manager stops.
type httpRunnable struct {
	name    string
	addr    string
	handler http.Handler
}

func (h httpRunnable) Start(ctx context.Context) error {
	return httpserve.Serve(ctx, h.name, h.addr, h.handler, func(a net.Addr) {
		ctrl.Log.WithName(h.name).Info("serving", "address", a.String())
	})
}

func (httpRunnable) NeedLeaderElection() bool { return false }

// xdsRunnable serves xDS on every replica: proxies may connect to any.
type xdsRunnable struct {
	srv  *xdsserver.Server
	addr string
}

func (x xdsRunnable) Start(ctx context.Context) error { return x.srv.Serve(ctx, x.addr) }
func (xdsRunnable) NeedLeaderElection() bool          { return false }
