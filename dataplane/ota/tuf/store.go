package tuf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/cairn-platform/cairn/internal/atomicfile"
)

// Store keeps a client's trusted metadata. Load returns an error wrapping
// ErrNotFound when name is absent; Delete of an absent name succeeds.
type Store interface {
	Load(name string) ([]byte, error)
	Save(name string, b []byte) error
	Delete(name string) error
}

// DirStore stores trusted metadata as files in a directory, created on the
// first Save. Writes are atomic and durable, so a power cut on a device
// leaves either the old or the new file, never a torn one.
type DirStore string

func (d DirStore) path(name string) (string, error) {
	if name == "" || filepath.Base(name) != name || name == "." || name == ".." {
		return "", errorf(ErrInvalid, "invalid metadata file name %q", name)
	}
	return filepath.Join(string(d), name), nil
}

// Load reads name.
func (d DirStore) Load(name string) ([]byte, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errorf(ErrNotFound, "%s is not in %s", name, string(d))
	}
	if err != nil {
		return nil, fmt.Errorf("loading trusted %s: %w", name, err)
	}
	return b, nil
}

// Save atomically replaces name with b (mode 0600).
func (d DirStore) Save(name string, b []byte) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return fmt.Errorf("saving trusted %s: %w", name, err)
	}
	if err := atomicfile.WriteFile(p, b, 0o600); err != nil {
		return fmt.Errorf("saving trusted %s: %w", name, err)
	}
	return nil
}

// Delete removes name.
func (d DirStore) Delete(name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting trusted %s: %w", name, err)
	}
	return atomicfile.SyncDir(string(d))
}

// MemoryStore keeps trusted metadata in memory, for the controller. The zero
// value is ready to use; it is safe for concurrent use.
type MemoryStore struct {
	mu    sync.Mutex
	files map[string][]byte
}

// Load returns a copy of name.
func (m *MemoryStore) Load(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[name]
	if !ok {
		return nil, errorf(ErrNotFound, "%s is not in the memory store", name)
	}
	return bytes.Clone(b), nil
}

// Save stores a copy of b as name.
func (m *MemoryStore) Save(name string, b []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files == nil {
		m.files = map[string][]byte{}
	}
	m.files[name] = bytes.Clone(b)
	return nil
}

// Delete removes name.
func (m *MemoryStore) Delete(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.files, name)
	return nil
}
