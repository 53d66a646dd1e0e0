package ota

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/cairn-platform/cairn/edge-agent/protocol"
	"github.com/cairn-platform/cairn/internal/atomicfile"
)

// TargetInfo is what the verified OTA metadata says about a target.
type TargetInfo struct {
	// Version of the firmware (semver).
	Version string
	// Length of the image in bytes.
	Length int64
	// SHA256 of the image, lowercase hex.
	SHA256 string
}

// Resolver verifies the OTA repository's signed (TUF) metadata and returns
// the target's verified length and hash; it is the only source of them.
type Resolver interface {
	Resolve(ctx context.Context, repository, target string) (TargetInfo, error)
}

// Config configures a Manager.
type Config struct {
	// Dir holds the slots, the job and the downloads.
	Dir        string
	Bootloader Bootloader
	Resolver   Resolver
	// HTTP fetches images and deltas (default: a client without timeout;
	// requests are bound by the context).
	HTTP *http.Client
	// Prepare adds the device's credentials to each request.
	Prepare func(*http.Request)
	// HealthCheck decides whether a freshly booted slot is good (nil: always).
	HealthCheck func(ctx context.Context) error
	// HealthTimeout bounds HealthCheck (default 2m).
	HealthTimeout time.Duration
	// Report receives every FirmwareState (the agent publishes it).
	Report func(protocol.FirmwareState)
	// ProgressInterval is the least time between two download progress
	// reports (default 1s; negative reports every 10% step).
	ProgressInterval time.Duration
	Log              logr.Logger
	Now              func() time.Time
	// InitialVersion is reported for a slot with no meta.json (factory
	// image).
	InitialVersion string
}

// Manager runs A/B firmware updates. Its methods are safe for concurrent
// use; Boot and Handle are serialized.
type Manager struct {
	cfg Config
	log logr.Logger

	// work serializes Boot and Handle. It is released before Reboot is
	// called, so a simulated reboot may call Boot again.
	work sync.Mutex

	mu     sync.Mutex // guards state
	state  protocol.FirmwareState
	booted BootInfo
	job    *job // nil when there was never an assignment

	// retry policy of network operations
	attempts int
	backoff  time.Duration
}

// job is the persisted assignment being worked on (<Dir>/job.json).
type job struct {
	Assignment protocol.OTAAssignment `json:"assignment"`
	Phase      string                 `json:"phase"`
	Message    string                 `json:"message,omitempty"`
	Delta      bool                   `json:"delta,omitempty"`
	// Note is remembered across phases (e.g. why a delta was not used).
	Note string `json:"note,omitempty"`
	// Previous is what ran before the job started.
	PrevSlot    string `json:"prevSlot,omitempty"`
	PrevVersion string `json:"prevVersion,omitempty"`
	PrevSHA256  string `json:"prevSHA256,omitempty"`
	// Target is the slot (and its content) the job boots.
	TargetSlot    string `json:"targetSlot,omitempty"`
	TargetVersion string `json:"targetVersion,omitempty"`
	TargetSHA256  string `json:"targetSHA256,omitempty"`
	// HealthError is the failed health check of the target slot.
	HealthError string    `json:"healthError,omitempty"`
	Time        time.Time `json:"time"`
}

func finished(phase string) bool {
	switch phase {
	case protocol.PhaseSucceeded, protocol.PhaseFailed, protocol.PhaseRolledBack:
		return true
	}
	return false
}

// slotMeta is <Dir>/slots/<slot>/meta.json.
type slotMeta struct {
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
}

// New returns a Manager. It loads a persisted job but does not touch the
// bootloader; call Boot next.
func New(cfg Config) (*Manager, error) {
	if cfg.Dir == "" {
		return nil, errors.New("ota: Dir is required")
	}
	if cfg.Bootloader == nil {
		return nil, errors.New("ota: Bootloader is required")
	}
	if cfg.Resolver == nil {
		return nil, errors.New("ota: Resolver is required")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{}
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = time.Second
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = 2 * time.Minute
	}
	if cfg.Report == nil {
		cfg.Report = func(protocol.FirmwareState) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log.GetSink() == nil {
		cfg.Log = logr.Discard()
	}
	m := &Manager{cfg: cfg, log: cfg.Log, attempts: 5, backoff: time.Second}
	for _, d := range []string{m.slotDir(SlotA), m.slotDir(SlotB), m.path("staging"), m.path("downloads")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("ota: %w", err)
		}
	}
	j, err := m.loadJob()
	if err != nil {
		return nil, err
	}
	m.job = j
	if j != nil {
		m.state = protocol.FirmwareState{
			Rollout: j.Assignment.Rollout, Action: j.Assignment.Action,
			Phase: j.Phase, Message: j.Message, Delta: j.Delta, Time: j.Time,
		}
	}
	return m, nil
}

func (m *Manager) path(elem ...string) string {
	return filepath.Join(append([]string{m.cfg.Dir}, elem...)...)
}

func (m *Manager) slotDir(slot string) string { return m.path("slots", slot) }

// State returns the last reported FirmwareState.
func (m *Manager) State() protocol.FirmwareState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

func (m *Manager) loadJob() (*job, error) {
	data, err := os.ReadFile(m.path("job.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ota: %w", err)
	}
	var j job
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("ota: job %s: %w", m.path("job.json"), err)
	}
	return &j, nil
}

func (m *Manager) saveJob(j *job) error {
	data, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(m.path("job.json"), data, 0o644); err != nil {
		return fmt.Errorf("ota: saving job: %w", err)
	}
	return nil
}

// readSlot returns what a slot holds: its meta.json, or for a slot with an
// image but no meta.json (factory image) InitialVersion and the image's
// hash. ok is false for an empty slot.
func (m *Manager) readSlot(slot string) (meta slotMeta, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(m.slotDir(slot), "meta.json"))
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &meta); err != nil {
			return meta, false, fmt.Errorf("slot %s: meta.json: %w", slot, err)
		}
		return meta, true, nil
	case !errors.Is(err, fs.ErrNotExist):
		return meta, false, err
	}
	f, err := os.Open(filepath.Join(m.slotDir(slot), "image"))
	if errors.Is(err, fs.ErrNotExist) {
		return meta, false, nil
	}
	if err != nil {
		return meta, false, err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return meta, false, fmt.Errorf("slot %s: %w", slot, err)
	}
	return slotMeta{Version: m.cfg.InitialVersion, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, true, nil
}

// setPhase records a phase change in the job, persists it and reports it.
func (m *Manager) setPhase(j *job, phase, msg string) {
	j.Phase, j.Message, j.Time = phase, msg, m.cfg.Now()
	if err := m.saveJob(j); err != nil {
		m.log.Error(err, "cannot persist the OTA job", "rollout", j.Assignment.Rollout)
	}
	m.mu.Lock()
	m.job = j
	m.state.Rollout, m.state.Action = j.Assignment.Rollout, j.Assignment.Action
	m.state.Phase, m.state.Message, m.state.Delta = phase, msg, j.Delta
	m.state.Progress = 0
	m.state.Time = j.Time
	st := m.state
	m.mu.Unlock()
	m.log.Info("firmware update", "rollout", j.Assignment.Rollout, "action", j.Assignment.Action, "phase", phase, "message", msg)
	m.cfg.Report(st)
}

// progress reports a download's progress (percent).
func (m *Manager) progress(pct int32) {
	m.mu.Lock()
	m.state.Progress = pct
	st := m.state
	m.mu.Unlock()
	m.cfg.Report(st)
}

// setRunning records the booted slot's content in the state.
func (m *Manager) setRunning(info BootInfo, meta slotMeta) {
	m.mu.Lock()
	m.booted = info
	m.state.Slot, m.state.Version, m.state.SHA256 = info.Slot, meta.Version, meta.SHA256
	m.mu.Unlock()
}

// Boot asks the bootloader which slot booted and finishes what a reboot
// started: on a trial boot of an update it runs the health check and
// commits the slot (or reboots to fall back); after a fallback it reports
// RolledBack. It returns the current state, which it also reports.
func (m *Manager) Boot(ctx context.Context) (protocol.FirmwareState, error) {
	m.work.Lock()
	reboot, err := m.boot(ctx)
	m.work.Unlock()
	if err != nil {
		return m.State(), err
	}
	if reboot {
		if err := m.cfg.Bootloader.Reboot(ctx); err != nil {
			m.log.Error(err, "reboot failed; the previous slot boots at the next restart")
			return m.State(), fmt.Errorf("ota: reboot: %w", err)
		}
	}
	return m.State(), nil
}

func (m *Manager) boot(ctx context.Context) (reboot bool, err error) {
	info, err := m.cfg.Bootloader.Boot()
	if err != nil {
		return false, fmt.Errorf("ota: bootloader: %w", err)
	}
	if !validSlot(info.Slot) {
		return false, fmt.Errorf("ota: bootloader booted unknown slot %q", info.Slot)
	}
	meta, _, err := m.readSlot(info.Slot)
	if err != nil {
		m.log.Error(err, "cannot read the booted slot", "slot", info.Slot)
	}
	m.setRunning(info, meta)
	m.log.Info("booted", "slot", info.Slot, "version", meta.Version, "trial", info.Trial, "fellBack", info.FellBack)

	m.mu.Lock()
	j := m.job
	m.mu.Unlock()

	switch {
	case info.FellBack:
		failed := info.FailedSlot
		if failed == "" {
			failed = otherSlot(info.Slot)
		}
		if j == nil || j.TargetSlot != failed || j.Phase == protocol.PhaseSucceeded {
			m.log.Info("a trial boot nobody waited for did not commit", "slot", failed)
			m.report()
			return false, nil
		}
		if j.Assignment.Action == protocol.OTARollback {
			msg := fmt.Sprintf("rollback to slot %s did not commit after its trial boot; still running %s in slot %s", failed, meta.Version, info.Slot)
			if j.HealthError != "" {
				msg = fmt.Sprintf("rollback to slot %s failed its health check (%s); still running %s in slot %s", failed, j.HealthError, meta.Version, info.Slot)
			}
			m.setPhase(j, protocol.PhaseFailed, msg)
			return false, nil
		}
		msg := fmt.Sprintf("slot %s did not commit after its trial boot; booted slot %s", failed, info.Slot)
		if j.HealthError != "" {
			msg = fmt.Sprintf("health check of %s in slot %s failed: %s; booted slot %s", j.TargetVersion, failed, j.HealthError, info.Slot)
		}
		m.setPhase(j, protocol.PhaseRolledBack, msg)
		return false, nil

	case info.Trial:
		if j == nil || finished(j.Phase) || j.TargetSlot != info.Slot {
			// A trial nobody is waiting for: keep it only if it is healthy.
			if err := m.healthCheck(ctx); err != nil {
				if errors.As(err, new(interrupted)) {
					return false, fmt.Errorf("ota: health check of slot %s: %w", info.Slot, err)
				}
				m.log.Error(err, "health check failed on an unexpected trial boot; rebooting to fall back", "slot", info.Slot)
				m.report()
				return true, nil
			}
			if err := m.cfg.Bootloader.Commit(info.Slot); err != nil {
				return false, fmt.Errorf("ota: commit slot %s: %w", info.Slot, err)
			}
			m.setRunning(BootInfo{Slot: info.Slot}, meta)
			m.report()
			return false, nil
		}
		m.setPhase(j, protocol.PhaseVerifying, fmt.Sprintf("checking the health of %s in slot %s", meta.Version, info.Slot))
		herr := m.healthCheck(ctx)
		var intr interrupted
		if errors.As(herr, &intr) {
			// Stopped before a verdict: the slot stays uncommitted and the
			// bootloader falls back to the previous slot at the next boot.
			return false, fmt.Errorf("ota: health check of slot %s interrupted: %w", info.Slot, intr.error)
		}
		if herr == nil {
			if err := m.cfg.Bootloader.Commit(info.Slot); err != nil {
				herr = fmt.Errorf("cannot commit slot %s: %w", info.Slot, err)
			}
		}
		if herr != nil {
			j.HealthError = herr.Error()
			if j.Assignment.Action == protocol.OTARollback {
				m.setPhase(j, protocol.PhaseFailed, fmt.Sprintf("rollback to slot %s failed its health check (%s); rebooting into slot %s", info.Slot, herr, j.PrevSlot))
			} else {
				m.setPhase(j, protocol.PhaseRolledBack, fmt.Sprintf("health check of %s in slot %s failed: %s; rebooting into slot %s", meta.Version, info.Slot, herr, j.PrevSlot))
			}
			return true, nil
		}
		m.setRunning(BootInfo{Slot: info.Slot}, meta)
		m.finishTarget(j, meta)
		return false, nil

	default:
		if j != nil && !finished(j.Phase) && (j.Phase == protocol.PhaseRebooting || j.Phase == protocol.PhaseVerifying) &&
			j.TargetSlot == info.Slot && j.TargetSHA256 != "" && meta.SHA256 == j.TargetSHA256 {
			// Committed, but the process stopped before it said so.
			m.finishTarget(j, meta)
			return false, nil
		}
		m.report()
		return false, nil
	}
}

// finishTarget records that the job's target slot booted and committed.
func (m *Manager) finishTarget(j *job, meta slotMeta) {
	if j.Assignment.Action == protocol.OTARollback {
		m.setPhase(j, protocol.PhaseRolledBack, fmt.Sprintf("rolled back to %s in slot %s", meta.Version, j.TargetSlot))
		return
	}
	msg := fmt.Sprintf("running %s in slot %s", meta.Version, j.TargetSlot)
	if j.Note != "" {
		msg += " (" + j.Note + ")"
	}
	m.setPhase(j, protocol.PhaseSucceeded, msg)
}

// report sends the current state without a phase change.
func (m *Manager) report() {
	m.cfg.Report(m.State())
}

func (m *Manager) healthCheck(parent context.Context) error {
	if m.cfg.HealthCheck == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(parent, m.cfg.HealthTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("health check panicked: %v", r)
			}
		}()
		done <- m.cfg.HealthCheck(ctx)
	}()
	select {
	case err := <-done:
		switch {
		case err == nil:
			return nil
		case parent.Err() != nil:
			return interrupted{parent.Err()}
		case ctx.Err() != nil:
			return fmt.Errorf("health check did not pass within %s", m.cfg.HealthTimeout)
		}
		return err
	case <-ctx.Done():
		if parent.Err() != nil {
			return interrupted{parent.Err()}
		}
		return fmt.Errorf("health check did not pass within %s", m.cfg.HealthTimeout)
	}
}

// interrupted is a health check cut short by the caller's context (the agent
// is stopping): neither a pass nor a failure.
type interrupted struct{ error }

func (i interrupted) Unwrap() error { return i.error }

// Handle works on an assignment: it starts it, resumes it when it is
// unfinished, or re-reports it when it is finished. Call Boot first.
func (m *Manager) Handle(ctx context.Context, a protocol.OTAAssignment) error {
	m.work.Lock()
	reboot, err := m.handle(ctx, a)
	m.work.Unlock()
	if err != nil || !reboot {
		return err
	}
	if err := m.cfg.Bootloader.Reboot(ctx); err != nil {
		m.log.Error(err, "reboot failed; the new slot is tried at the next restart")
		m.mu.Lock()
		j := m.job
		m.mu.Unlock()
		m.work.Lock()
		if j != nil && j.Phase == protocol.PhaseRebooting {
			m.setPhase(j, protocol.PhaseRebooting, fmt.Sprintf("reboot failed (%v); slot %s is tried at the next restart", err, j.TargetSlot))
		}
		m.work.Unlock()
		return fmt.Errorf("ota: reboot: %w", err)
	}
	return nil
}

func (m *Manager) handle(ctx context.Context, a protocol.OTAAssignment) (bool, error) {
	m.mu.Lock()
	booted, prev := m.booted, m.job
	m.mu.Unlock()
	if booted.Slot == "" {
		return false, errors.New("ota: Handle called before Boot")
	}
	if a.Rollout == "" {
		return false, errors.New("ota: assignment without rollout")
	}
	if prev != nil && prev.Assignment.Rollout == a.Rollout && prev.Assignment.Action == a.Action {
		if finished(prev.Phase) {
			m.report()
			return false, nil
		}
		m.log.Info("resuming firmware update", "rollout", a.Rollout, "action", a.Action, "phase", prev.Phase)
		if a.Action == protocol.OTARollback {
			return m.rollback(ctx, prev, booted)
		}
		return m.install(ctx, prev, booted)
	}
	j := &job{Assignment: a}
	switch a.Action {
	case protocol.OTAInstall:
		return m.install(ctx, j, booted)
	case protocol.OTARollback:
		if prev != nil && prev.Assignment.Rollout == a.Rollout && prev.Assignment.Action == protocol.OTAInstall {
			j.PrevSlot, j.PrevVersion, j.PrevSHA256 = prev.PrevSlot, prev.PrevVersion, prev.PrevSHA256
		}
		return m.rollback(ctx, j, booted)
	default:
		m.setPhase(j, protocol.PhaseFailed, fmt.Sprintf("unknown action %q", a.Action))
		return false, nil
	}
}

// rollback boots the previous slot again.
func (m *Manager) rollback(_ context.Context, j *job, booted BootInfo) (bool, error) {
	running, _, err := m.readSlot(booted.Slot)
	if err != nil {
		return false, fmt.Errorf("ota: %w", err)
	}
	// A new job rolls back to the slot the install came from (or, without
	// one, the other slot); a resumed job keeps its target.
	target := j.TargetSlot
	if j.Phase == "" {
		target = j.PrevSlot
		if target == "" {
			target = otherSlot(booted.Slot)
		}
	}
	if target == booted.Slot {
		j.TargetSlot, j.TargetVersion, j.TargetSHA256 = booted.Slot, running.Version, running.SHA256
		m.setPhase(j, protocol.PhaseRolledBack, fmt.Sprintf("already running the previous firmware %s in slot %s", running.Version, booted.Slot))
		return false, nil
	}
	meta, ok, err := m.readSlot(target)
	if err != nil {
		return false, fmt.Errorf("ota: %w", err)
	}
	if !ok {
		m.setPhase(j, protocol.PhaseFailed, fmt.Sprintf("no previous firmware to roll back to: slot %s is empty", target))
		return false, nil
	}
	if j.Phase == "" && j.PrevSHA256 != "" && meta.SHA256 != j.PrevSHA256 {
		m.setPhase(j, protocol.PhaseFailed, fmt.Sprintf("cannot roll back: slot %s no longer holds the previous firmware %s (it holds %s)", target, j.PrevVersion, meta.Version))
		return false, nil
	}
	if err := verifySlotImage(m.slotDir(target), meta); err != nil {
		m.setPhase(j, protocol.PhaseFailed, fmt.Sprintf("cannot roll back to slot %s: %v", target, err))
		return false, nil
	}
	// From here on PrevSlot is where the rollback comes from (the bootloader
	// falls back to it) and TargetSlot the slot it rolls back to.
	j.PrevSlot, j.PrevVersion, j.PrevSHA256 = booted.Slot, running.Version, running.SHA256
	j.TargetSlot, j.TargetVersion, j.TargetSHA256 = target, meta.Version, meta.SHA256
	if err := m.cfg.Bootloader.TryBoot(target); err != nil {
		m.setPhase(j, protocol.PhaseFailed, fmt.Sprintf("bootloader refused to try slot %s: %v", target, err))
		return false, nil
	}
	m.setPhase(j, protocol.PhaseRebooting, fmt.Sprintf("rebooting into %s in slot %s", meta.Version, target))
	return true, nil
}

// verifySlotImage checks a slot's image against its meta.
func verifySlotImage(dir string, meta slotMeta) error {
	ok, err := fileMatches(filepath.Join(dir, "image"), meta.Size, meta.SHA256)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("its image does not match its recorded sha256")
	}
	return nil
}

// fileMatches reports whether the file has the given length and sha256.
func fileMatches(path string, size int64, sum string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if fi.Size() != size {
		return false, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, err
	}
	return hex.EncodeToString(h.Sum(nil)) == sum, nil
}

// Cancel ends an unfinished job that has not switched slots yet (no phase
// or Downloading or Installing) as Failed with the reason, and reports it;
// call it after Handle returned because its context was cancelled. A job
// past TryBoot is left alone: the trial boot decides. It tells whether the
// job was cancelled.
func (m *Manager) Cancel(reason string) bool {
	m.work.Lock()
	defer m.work.Unlock()
	m.mu.Lock()
	j := m.job
	m.mu.Unlock()
	if j == nil {
		return false
	}
	switch j.Phase {
	case "", protocol.PhaseDownloading, protocol.PhaseInstalling:
		m.setPhase(j, protocol.PhaseFailed, "canceled: "+reason)
		return true
	}
	return false
}
