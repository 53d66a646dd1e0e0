package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cairn-platform/cairn/edge-agent/agent"
	"github.com/cairn-platform/cairn/edge-agent/ota"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
)

// otaFlags configure firmware updates.
type otaFlags struct {
	root, bootloader, healthCheck, model, version, factoryImage string
	healthTimeout                                               time.Duration
}

func (o *otaFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.root, "ota-root", "", "TUF root.json the device trusts for firmware updates (provisioned with the device); empty disables updates.")
	fs.StringVar(&o.bootloader, "ota-bootloader", "", "Command driving the A/B bootloader (see docs/firmware.md: booted, try-boot SLOT, commit SLOT, reboot); empty simulates one under --data-dir.")
	fs.StringVar(&o.healthCheck, "ota-health-check", "", "Command run after booting a new firmware (environment: CAIRN_DEVICE=<namespace>/<name>); a non-zero exit rolls the update back. The device must also reconnect to the hub.")
	fs.DurationVar(&o.healthTimeout, "ota-health-timeout", 2*time.Minute, "Time a new firmware has to reconnect and pass the health check.")
	fs.StringVar(&o.model, "model", "", "Hardware model; firmware whose signed metadata names other models is refused.")
	fs.StringVar(&o.version, "firmware-version", "", "Version of the factory firmware in slot A.")
	fs.StringVar(&o.factoryImage, "factory-image", "", "Image to place in slot A of a device that has none (simulated devices), the base of binary deltas.")
}

// config is the OTA configuration of one device; nil when updates are off.
func (o otaFlags) config(dev protocol.Device, dataDir string) (*agent.OTAConfig, error) {
	if o.root == "" {
		if o.bootloader != "" || o.healthCheck != "" || o.factoryImage != "" {
			return nil, errors.New("--ota-bootloader, --ota-health-check and --factory-image need --ota-root")
		}
		return nil, nil
	}
	root, err := os.ReadFile(o.root)
	if err != nil {
		return nil, fmt.Errorf("--ota-root: %w", err)
	}
	cfg := &agent.OTAConfig{
		Dir: filepath.Join(dataDir, "ota"), TrustedRoot: root, Model: o.model,
		InitialVersion: o.version, HealthTimeout: o.healthTimeout,
	}
	if o.bootloader != "" {
		cfg.Bootloader = &ota.ExecBootloader{Command: o.bootloader}
	}
	if o.factoryImage != "" {
		img, err := os.ReadFile(o.factoryImage)
		if err != nil {
			return nil, fmt.Errorf("--factory-image: %w", err)
		}
		if err := ota.SeedSlot(cfg.Dir, ota.SlotA, img); err != nil {
			return nil, fmt.Errorf("--factory-image: %w", err)
		}
	}
	if o.healthCheck != "" {
		command := o.healthCheck
		cfg.HealthCheck = func(ctx context.Context) error {
			cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
			cmd.Env = append(os.Environ(), "CAIRN_DEVICE="+dev.String())
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("health check: %w: %s", err, strings.TrimSpace(string(out)))
			}
			return nil
		}
	}
	return cfg, nil
}
