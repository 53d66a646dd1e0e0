package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cairn-platform/cairn/dataplane/ota/tuf"
	"github.com/cairn-platform/cairn/edge-agent/ota"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
)

// OTAConfig turns on firmware updates: the agent installs what the hub
// assigns in the twin (protocol.OTAKey) into the inactive A/B slot, after
// verifying it against the device's trusted TUF metadata.
type OTAConfig struct {
	// Dir holds the slots, downloads and trusted metadata (default
	// <DataDir>/ota).
	Dir string
	// TrustedRoot is the TUF root.json the device was provisioned with;
	// used only when Dir holds no trusted root yet. Later roots are
	// accepted only when signed by the trusted one.
	TrustedRoot []byte
	// Bootloader switches slots; nil simulates one in Dir (a reboot then
	// boots again in-process).
	Bootloader ota.Bootloader
	// Model is the hardware model; a target whose metadata names other
	// models is refused. Empty skips the check.
	Model string
	// InitialVersion is the version of a factory image without metadata.
	InitialVersion string
	// HealthCheck runs after booting a new slot, once the device is back
	// on the hub; an error rolls the update back.
	HealthCheck func(ctx context.Context) error
	// HealthTimeout bounds reconnecting plus HealthCheck (default 2m).
	HealthTimeout time.Duration
	// HTTP downloads metadata, images and deltas (default: 30 s to
	// connect and receive headers, no overall limit).
	HTTP *http.Client
}

// otaRunner connects an ota.Manager to the twin.
type otaRunner struct {
	a   *Agent
	mgr *ota.Manager
	// changed wakes the runner when the assignment in the twin changes.
	changed chan struct{}
}

func (a *Agent) newOTA(cfg OTAConfig) (*otaRunner, error) {
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(a.cfg.DataDir, "ota")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: 30 * time.Second,
			TLSHandshakeTimeout: 30 * time.Second, IdleConnTimeout: time.Minute,
		}}
	}
	store := tuf.DirStore(filepath.Join(cfg.Dir, "tuf"))
	if _, err := store.Load(tuf.RootFile); errors.Is(err, tuf.ErrNotFound) {
		if len(cfg.TrustedRoot) == 0 {
			return nil, errors.New("OTA needs a trusted TUF root (root.json) to start from")
		}
		if err := tuf.Bootstrap(store, cfg.TrustedRoot); err != nil {
			return nil, fmt.Errorf("trusting the provisioned root: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("reading the trusted root: %w", err)
	}
	r := &otaRunner{a: a, changed: make(chan struct{}, 1)}
	boot := cfg.Bootloader
	if boot == nil {
		boot = &ota.FileBootloader{Dir: cfg.Dir, RebootFunc: r.simulatedReboot}
	}
	mgr, err := ota.New(ota.Config{
		Dir: cfg.Dir, Bootloader: boot, HTTP: cfg.HTTP, Prepare: a.authorize,
		Resolver:       &tufResolver{store: store, http: cfg.HTTP, prepare: a.authorize, model: cfg.Model, now: a.cfg.Now},
		HealthCheck:    r.healthCheck(cfg.HealthCheck),
		HealthTimeout:  cfg.HealthTimeout,
		Report:         r.report,
		Log:            a.log.WithName("ota"),
		Now:            a.cfg.Now,
		InitialVersion: cfg.InitialVersion,
	})
	if err != nil {
		return nil, err
	}
	r.mgr = mgr
	return r, nil
}

// run boots (finishing or rolling back an update that was on trial) and
// then carries out every new assignment, one at a time.
func (r *otaRunner) run(ctx context.Context) {
	if _, err := r.mgr.Boot(ctx); err != nil && ctx.Err() == nil {
		r.a.log.Error(err, "booting the firmware slots")
	}
	for ctx.Err() == nil {
		if a, ok := r.assignment(); ok && r.handle(ctx, a) {
			continue // interrupted by a new assignment: take it now
		}
		select {
		case <-ctx.Done():
		case <-r.changed:
		}
	}
}

// handle carries out a until it ends or the hub withdraws or replaces it.
// A download is abandoned then; once the new slot is on trial the update
// runs to its end (commit or fall back), whatever the hub says. It tells
// whether a was interrupted.
func (r *otaRunner) handle(ctx context.Context, a protocol.OTAAssignment) bool {
	jobCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.mgr.Handle(jobCtx, a) }()
	changed := false // the assignment changed while the slot was on trial
	for {
		select {
		case err := <-done:
			if err != nil && ctx.Err() == nil {
				r.a.log.Error(err, "firmware update", "rollout", a.Rollout, "action", a.Action)
			}
			return changed
		case <-r.changed:
			cur, ok := r.assignment()
			if ok && cur == a {
				continue
			}
			if p := r.mgr.State().Phase; p == protocol.PhaseRebooting || p == protocol.PhaseVerifying {
				changed = true // on trial: the health check decides, then the new assignment
				continue
			}
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				r.a.log.Error(err, "firmware update", "rollout", a.Rollout, "action", a.Action)
			}
			if ctx.Err() == nil && r.mgr.Cancel("the assignment was withdrawn or replaced") {
				r.a.log.Info("firmware update canceled", "rollout", a.Rollout, "action", a.Action)
			}
			return true
		case <-ctx.Done():
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				r.a.log.Error(err, "firmware update", "rollout", a.Rollout, "action", a.Action)
			}
			return false
		}
	}
}

// assignment reads the hub's OTA assignment from the twin.
func (r *otaRunner) assignment() (protocol.OTAAssignment, bool) {
	r.a.mu.Lock()
	e, ok := r.a.state[protocol.OTAKey]
	r.a.mu.Unlock()
	var a protocol.OTAAssignment
	if !ok || e.Deleted {
		return a, false
	}
	if err := json.Unmarshal(e.Value, &a); err != nil {
		r.a.log.Info("ignoring a malformed OTA assignment", "error", err.Error())
		return a, false
	}
	return a, true
}

func (r *otaRunner) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// report records the firmware state in the twin; it reaches the hub now,
// or with the full exchange of the next connection.
func (r *otaRunner) report(st protocol.FirmwareState) {
	raw, err := json.Marshal(st)
	if err == nil {
		err = r.a.write(context.Background(), protocol.FirmwareStatusKey, raw, false)
	}
	if err != nil {
		r.a.log.Error(err, "recording the firmware state", "phase", st.Phase)
	}
	r.a.cfg.Metrics.otaPhases.WithLabelValues(st.Phase).Inc()
}

// simulatedReboot stands in for a power cycle of a simulated device: the
// bootloader picks the slot again and the agent boots it.
func (r *otaRunner) simulatedReboot(ctx context.Context) error {
	r.a.log.Info("rebooting (simulated)")
	_, err := r.mgr.Boot(ctx)
	return err
}

// healthCheck makes a booted slot healthy only once the device is back on
// the hub (the update must not cut it off the fleet) and the extra check
// passes.
func (r *otaRunner) healthCheck(extra func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for !r.a.Connected() {
			select {
			case <-ctx.Done():
				return errors.New("the device did not reconnect to the hub")
			case <-tick.C:
			}
		}
		if extra != nil {
			return extra(ctx)
		}
		return nil
	}
}

// authorize adds the device's credential to OTA server requests.
func (a *Agent) authorize(req *http.Request) {
	b, err := os.ReadFile(filepath.Join(a.cfg.DataDir, credentialFile))
	if err == nil {
		req.SetBasicAuth(a.cfg.Device.String(), string(b))
	}
}

// tufResolver refreshes the device's trusted TUF metadata from the
// assignment's repository and looks the target up in it.
type tufResolver struct {
	store   tuf.Store
	http    *http.Client
	prepare func(*http.Request)
	model   string
	now     func() time.Time
}

func (t *tufResolver) Resolve(ctx context.Context, repository, target string) (ota.TargetInfo, error) {
	base, err := url.Parse(repository)
	if err != nil {
		return ota.TargetInfo{}, fmt.Errorf("repository URL: %w", err)
	}
	base = base.JoinPath("metadata") // "<repository>/metadata/<file>"
	base.Path += "/"
	c, err := tuf.NewClient(t.store, tuf.HTTPFetcher{Base: base, Client: t.http, Prepare: t.prepare}, t.now)
	if err != nil {
		return ota.TargetInfo{}, err
	}
	if err := c.Update(ctx); err != nil {
		return ota.TargetInfo{}, fmt.Errorf("updating the trusted metadata: %w", err)
	}
	tf, err := c.Target(target)
	if err != nil {
		return ota.TargetInfo{}, err
	}
	fw, err := tf.Firmware()
	if err != nil {
		return ota.TargetInfo{}, fmt.Errorf("target %s: %w", target, err)
	}
	if t.model != "" && len(fw.Models) > 0 && !slices.Contains(fw.Models, t.model) {
		return ota.TargetInfo{}, fmt.Errorf("target %s is for models %v, not %s", target, fw.Models, t.model)
	}
	return ota.TargetInfo{Version: fw.Version, Length: tf.Length, SHA256: tf.Hashes["sha256"]}, nil
}
