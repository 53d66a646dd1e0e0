// Package controllers wires every Cairn reconciler into a manager.
package controllers

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/cairn-platform/cairn/api/scheme"
	"github.com/cairn-platform/cairn/controllers/edge"
	"github.com/cairn-platform/cairn/controllers/gateway"
	"github.com/cairn-platform/cairn/controllers/gitops"
	"github.com/cairn-platform/cairn/controllers/serverless"
	"github.com/cairn-platform/cairn/dataplane/authz"
	"github.com/cairn-platform/cairn/dataplane/edgehub"
	xdsserver "github.com/cairn-platform/cairn/dataplane/xds/server"
	"github.com/cairn-platform/cairn/dataplane/xds/translate"
	"github.com/cairn-platform/cairn/internal/scangate"
)

// NewScheme returns a scheme with the built-in types and every Cairn API.
func NewScheme() *runtime.Scheme { return scheme.New() }

type setupper interface {
	SetupWithManager(ctrl.Manager) error
}

// Config is what the controllers need beyond the manager.
type Config struct {
	// XDS serves the gateways' configuration to their proxies.
	XDS *xdsserver.Server
	// Gateway holds gateway-wide translation settings.
	Gateway translate.Options
	// Authz, when set, is kept in sync with the AuthPolicies' introspection.
	Authz *authz.Server
	// OCIPollInterval is how often Functions' OCI tags are resolved again;
	// zero means serverless.DefaultOCIPollInterval.
	OCIPollInterval time.Duration
	// EdgeHub, when set, serves the edge agents and is kept in sync with
	// EdgeDevices.
	EdgeHub *edgehub.Hub
	// OTAURL is the base URL devices reach the OTA server at; empty leaves
	// Firmware rollouts waiting.
	OTAURL string
	// GitCheckoutDir holds each GitRepo's last fetched revision; empty uses
	// a directory under os.TempDir().
	GitCheckoutDir string
	// ImageScanner is the scanner service behind the scan gates of
	// GitRepos (images), Firmware and Functions (SBOMs); nil leaves objects
	// with a scanPolicy waiting (ScanUnavailable).
	ImageScanner scangate.Scanner
}

// SetupAll registers the Cairn reconcilers with mgr.
func SetupAll(mgr ctrl.Manager, cfg Config) error {
	c := mgr.GetClient()
	recorder := mgr.GetEventRecorder("cairn-manager")
	gw := gateway.NewGatewayReconciler(c, recorder, cfg.XDS, cfg.Gateway, mgr.Elected())
	cfg.XDS.OnChange(gw.NotifyXDSChange)
	if err := mgr.Add(gw.StatusRefresher()); err != nil {
		return fmt.Errorf("adding the gateway status refresher: %w", err)
	}
	reconcilers := map[string]setupper{
		"Gateway":    gw,
		"AuthPolicy": &gateway.AuthPolicyReconciler{Client: c, Recorder: recorder},
		"GitRepo":    &gitops.GitRepoReconciler{Client: c, Recorder: recorder, CheckoutDir: cfg.GitCheckoutDir, Scanner: cfg.ImageScanner},
		"EdgeDevice": &edge.EdgeDeviceReconciler{Client: c, Recorder: recorder},
		"Firmware":   &edge.FirmwareReconciler{Client: c, Recorder: recorder, OTAURL: cfg.OTAURL, Scanner: cfg.ImageScanner},
		"Function":   &serverless.FunctionReconciler{Client: c, Recorder: recorder, OCIPollInterval: cfg.OCIPollInterval, Scanner: cfg.ImageScanner},
	}
	if cfg.EdgeHub != nil {
		reconcilers["EdgeHub"] = &edgehub.Reconciler{Hub: cfg.EdgeHub}
	}
	if cfg.Authz != nil {
		reconcilers["AuthzSync"] = &gateway.AuthzSyncReconciler{Client: c, Authz: cfg.Authz}
	}
	for kind, r := range reconcilers {
		if err := r.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up the %s controller: %w", kind, err)
		}
	}
	return nil
}
