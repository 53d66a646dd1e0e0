package ota

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cairn-platform/cairn/internal/atomicfile"
)

// SeedSlot places a factory image in slot of the OTA directory dir when the
// slot is empty (provisioning, simulated devices); an existing image is
// left alone. Its version comes from Config.InitialVersion.
func SeedSlot(dir, slot string, image []byte) error {
	if !validSlot(slot) {
		return fmt.Errorf("slot %q: want A or B", slot)
	}
	path := filepath.Join(dir, "slots", slot, "image")
	if _, err := os.Stat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return atomicfile.WriteFile(path, image, 0o644)
}
