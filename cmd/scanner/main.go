// Command scanner is Cairn's vulnerability scanner service: it builds SBOMs
// with syft and matches them with grype against a local, offline database,
// for the manager's scan gates. It is a separate binary so the manager does
// not carry the scanning libraries.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/cairn-platform/cairn/dataplane/scan"
	"github.com/cairn-platform/cairn/dataplane/scan/server"
	"github.com/cairn-platform/cairn/internal/httpserve"
	"github.com/cairn-platform/cairn/internal/version"
)

type options struct {
	listen         string
	dbDir          string
	dbImport       string
	dbMirror       string
	updateInterval time.Duration
	tokenFile      string
	registryConfig string
	plainHTTP      bool
	caFile         string
	maxConcurrent  int
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", ":8080", "Address serving /v1/scan/image, /healthz and /metrics.")
	flag.StringVar(&o.dbDir, "db-dir", "/var/lib/cairn-scanner/db", "Directory of the grype (schema v6) vulnerability database.")
	flag.StringVar(&o.dbImport, "db-import", "", "Import this grype DB archive (.tar.gz/.tar.zst) at start.")
	flag.StringVar(&o.dbMirror, "db-mirror", "", "URL of a latest.json listing grype DB archives (an in-house mirror); fetched at start and every --db-update-interval. No request ever goes to the internet unless this names it.")
	flag.DurationVar(&o.updateInterval, "db-update-interval", 6*time.Hour, "How often --db-mirror is checked.")
	flag.StringVar(&o.tokenFile, "token-file", "", "File with the bearer token clients must send (mount a Secret); empty accepts any client, so keep the Service cluster-internal.")
	flag.StringVar(&o.registryConfig, "registry-config", "", "docker config.json with registry credentials (mount a kubernetes.io/dockerconfigjson Secret); empty pulls anonymously.")
	flag.BoolVar(&o.plainHTTP, "plain-http", false, "Allow registries over plain HTTP (in-cluster test registries).")
	flag.StringVar(&o.caFile, "ca-file", "", "PEM bundle of extra CAs trusted for registries.")
	flag.IntVar(&o.maxConcurrent, "max-concurrent-scans", 2, "Scans run at once; each holds an image's catalogue in memory.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	log := zap.New(zap.UseFlagOptions(&zapOpts)).WithName("scanner")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o, log)
	stop()
	if err != nil {
		log.Error(err, "scanner failed")
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, log logr.Logger) error {
	log.Info("starting Cairn scanner", "version", version.Version)
	reg := scan.RegistryOptions{PlainHTTP: o.plainHTTP, CAFile: o.caFile}
	if o.registryConfig != "" {
		cfg, err := os.ReadFile(o.registryConfig)
		if err != nil {
			return fmt.Errorf("--registry-config: %w", err)
		}
		reg.DockerConfigJSON = cfg
	}
	var token string
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	} else {
		log.Info("WARNING: no --token-file: any client that reaches this port can make the scanner pull images with its registry credentials; keep the Service cluster-internal or set a token")
	}
	if o.dbImport != "" {
		if err := scan.ImportDB(ctx, o.dbImport, o.dbDir); err != nil {
			return fmt.Errorf("--db-import: %w", err)
		}
		log.Info("imported vulnerability database", "archive", o.dbImport)
	}

	scanner := scan.NewScanner(scan.Options{DBDir: o.dbDir, Registry: reg})
	defer func() { _ = scanner.Close() }()
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := server.New(server.Options{Scanner: scanner, Token: token, MaxConcurrent: o.maxConcurrent, Log: log, Registerer: promReg})
	if err != nil {
		return err
	}
	if o.dbMirror != "" {
		go mirrorLoop(ctx, o, scanner, srv, log)
	}

	mux := http.NewServeMux()
	mux.Handle("/", srv.Handler())
	mux.Handle("GET /metrics", promhttp.HandlerFor(promReg, promhttp.HandlerOpts{}))
	return httpserve.Serve(ctx, "scanner", o.listen, mux, func(a net.Addr) { log.Info("serving", "address", a.String()) })
}

// mirrorLoop refreshes the database from the mirror; a failed update keeps
// the current database (scans go on with it) and is retried next time.
func mirrorLoop(ctx context.Context, o options, scanner *scan.Scanner, srv *server.Server, log logr.Logger) {
	client := &http.Client{Timeout: 10 * time.Minute}
	for {
		if err := scan.MirrorDB(ctx, o.dbMirror, o.dbDir, client); err != nil {
			log.Error(err, "updating the vulnerability database from the mirror", "url", o.dbMirror)
		} else {
			if err := scanner.Reload(); err != nil {
				log.Error(err, "reloading the vulnerability database")
			}
			srv.Forget()
			built, _ := scanner.DBBuilt()
			log.Info("vulnerability database updated", "built", built)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(o.updateInterval):
		}
	}
}
