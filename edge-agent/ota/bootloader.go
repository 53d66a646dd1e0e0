package ota

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cairn-platform/cairn/internal/atomicfile"
)

// Slot names.
const (
	SlotA = "A"
	SlotB = "B"
)

// otherSlot returns the slot that is not s.
func otherSlot(s string) string {
	if s == SlotA {
		return SlotB
	}
	return SlotA
}

func validSlot(s string) bool { return s == SlotA || s == SlotB }

// BootInfo describes the current boot.
type BootInfo struct {
	// Slot is the slot that booted.
	Slot string `json:"slot"`
	// Trial is true when the booted slot is on a trial boot (not committed).
	Trial bool `json:"trial,omitempty"`
	// FellBack is true when a trial boot did not commit and the bootloader
	// booted the previous slot again.
	FellBack bool `json:"fellBack,omitempty"`
	// FailedSlot is the slot whose trial did not commit (with FellBack).
	FailedSlot string `json:"failedSlot,omitempty"`
}

// Bootloader is the hook into the device's A/B bootloader.
type Bootloader interface {
	// Boot is what the bootloader does at power-on: it picks the slot to
	// boot. A slot marked for a trial boot is booted once; if the device
	// comes up again without that slot having been committed (crash, power
	// loss, failed health check), the bootloader boots the previous slot.
	Boot() (BootInfo, error)
	// TryBoot boots slot once at the next boot.
	TryBoot(slot string) error
	// Commit makes slot the permanent one.
	Commit(slot string) error
	// Reboot restarts the device.
	Reboot(ctx context.Context) error
}

// FileBootloader simulates a tryboot bootloader (Raspberry Pi tryboot,
// U-Boot bootcount) with the state file <Dir>/boot.json. A fresh device
// boots slot A.
type FileBootloader struct {
	// Dir holds boot.json.
	Dir string
	// RebootFunc is called by Reboot; the in-process simulation makes the
	// agent boot again by calling Manager.Boot. Nil does nothing.
	RebootFunc func(ctx context.Context) error

	mu sync.Mutex
}

// bootState is the content of boot.json.
type bootState struct {
	// Active is the committed slot.
	Active string `json:"active"`
	// Trial is the slot to boot once, if any.
	Trial string `json:"trial,omitempty"`
	// TrialBooted is set once the trial slot has been booted.
	TrialBooted bool `json:"trialBooted,omitempty"`
}

func (b *FileBootloader) path() string { return filepath.Join(b.Dir, "boot.json") }

func (b *FileBootloader) load() (bootState, error) {
	st := bootState{Active: SlotA}
	data, err := os.ReadFile(b.path())
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("bootloader state %s: %w", b.path(), err)
	}
	if !validSlot(st.Active) {
		st.Active = SlotA
	}
	return st, nil
}

func (b *FileBootloader) save(st bootState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(b.path(), data, 0o644)
}

// Boot implements Bootloader.
func (b *FileBootloader) Boot() (BootInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st, err := b.load()
	if err != nil {
		return BootInfo{}, err
	}
	switch {
	case st.Trial != "" && !st.TrialBooted:
		st.TrialBooted = true
		if err := b.save(st); err != nil {
			return BootInfo{}, err
		}
		return BootInfo{Slot: st.Trial, Trial: true}, nil
	case st.Trial != "":
		failed := st.Trial
		st.Trial, st.TrialBooted = "", false
		if err := b.save(st); err != nil {
			return BootInfo{}, err
		}
		return BootInfo{Slot: st.Active, FellBack: true, FailedSlot: failed}, nil
	}
	return BootInfo{Slot: st.Active}, nil
}

// TryBoot implements Bootloader.
func (b *FileBootloader) TryBoot(slot string) error {
	if !validSlot(slot) {
		return fmt.Errorf("unknown slot %q", slot)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st, err := b.load()
	if err != nil {
		return err
	}
	st.Trial, st.TrialBooted = slot, false
	return b.save(st)
}

// Commit implements Bootloader.
func (b *FileBootloader) Commit(slot string) error {
	if !validSlot(slot) {
		return fmt.Errorf("unknown slot %q", slot)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st, err := b.load()
	if err != nil {
		return err
	}
	st.Active = slot
	if st.Trial == slot {
		st.Trial, st.TrialBooted = "", false
	}
	return b.save(st)
}

// Reboot implements Bootloader.
func (b *FileBootloader) Reboot(ctx context.Context) error {
	if b.RebootFunc == nil {
		return nil
	}
	return b.RebootFunc(ctx)
}

// ExecBootloader drives a real bootloader through an external command (see
// the package documentation for the protocol and how it maps to U-Boot,
// RAUC and GRUB).
type ExecBootloader struct {
	// Command is the executable, run without a shell.
	Command string
	// Timeout bounds each invocation (default 30s).
	Timeout time.Duration
}

func (e *ExecBootloader) run(ctx context.Context, args ...string) ([]byte, error) {
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Command, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 512 {
			msg = msg[:512]
		}
		if msg != "" {
			return nil, fmt.Errorf("bootloader %s: %w: %s", strings.Join(args, " "), err, msg)
		}
		return nil, fmt.Errorf("bootloader %s: %w", strings.Join(args, " "), err)
	}
	return stdout.Bytes(), nil
}

// Boot implements Bootloader: it runs `Command booted`.
func (e *ExecBootloader) Boot() (BootInfo, error) {
	out, err := e.run(context.Background(), "booted")
	if err != nil {
		return BootInfo{}, err
	}
	var info BootInfo
	if err := json.Unmarshal(bytes.TrimSpace(out), &info); err != nil {
		return BootInfo{}, fmt.Errorf("bootloader booted: invalid output: %w", err)
	}
	if !validSlot(info.Slot) {
		return BootInfo{}, fmt.Errorf("bootloader booted: unknown slot %q", info.Slot)
	}
	return info, nil
}

// TryBoot implements Bootloader: it runs `Command try-boot SLOT`.
func (e *ExecBootloader) TryBoot(slot string) error {
	_, err := e.run(context.Background(), "try-boot", slot)
	return err
}

// Commit implements Bootloader: it runs `Command commit SLOT`.
func (e *ExecBootloader) Commit(slot string) error {
	_, err := e.run(context.Background(), "commit", slot)
	return err
}

// Reboot implements Bootloader: it runs `Command reboot`.
func (e *ExecBootloader) Reboot(ctx context.Context) error {
	_, err := e.run(ctx, "reboot")
	return err
}
