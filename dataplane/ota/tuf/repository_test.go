package tuf

import (
	"errors"
	"maps"
	"path/filepath"
	"strings"
	"testing"
)

func TestPublishRefusesTooFewKeys(t *testing.T) {
	f := newFixture(t)
	before := f.files()
	if err := f.repo.AddTarget("firmware/gw2-1.5.0.bin", 10, strings.Repeat("ab", 32), nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		keys Signers
		msg  string
	}{
		{"one of two targets keys", Signers{Targets: f.keys.Targets[:1], Snapshot: f.keys.Snapshot, Timestamp: f.keys.Timestamp},
			"cannot sign targets.json: 1 of the required 2 targets keys given"},
		{"same targets key twice", Signers{Targets: []*PrivateKey{f.keys.Targets[0], f.keys.Targets[0]}, Snapshot: f.keys.Snapshot, Timestamp: f.keys.Timestamp},
			"cannot sign targets.json: 1 of the required 2 targets keys given"},
		{"no timestamp key", Signers{Targets: f.keys.Targets, Snapshot: f.keys.Snapshot},
			"cannot sign timestamp.json: 0 of the required 1 timestamp keys given"},
		{"wrong role's key", Signers{Targets: f.keys.Targets, Snapshot: f.keys.Timestamp, Timestamp: f.keys.Timestamp},
			"is not a snapshot key of root.json version 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := f.repo.Publish(tc.keys, t0)
			if !errors.Is(err, ErrSignatures) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Publish() = %v, want ErrSignatures %q", err, tc.msg)
			}
			if !maps.EqualFunc(f.files(), before, func(a, b []byte) bool { return string(a) == string(b) }) {
				t.Fatal("refused Publish changed the published files")
			}
		})
	}
}

func TestRotateRootRefusesTooFewKeys(t *testing.T) {
	f := newFixture(t)
	next := f.keys
	next.Root = []*PrivateKey{mustKey(t)}
	if err := f.repo.RotateRoot(configFor(next), nil, next.Root, t0); !errors.Is(err, ErrSignatures) {
		t.Errorf("RotateRoot without old keys = %v, want ErrSignatures", err)
	}
	if err := f.repo.RotateRoot(configFor(next), f.keys.Root, nil, t0); !errors.Is(err, ErrSignatures) {
		t.Errorf("RotateRoot without new keys = %v, want ErrSignatures", err)
	}
	bad := configFor(next)
	bad.Targets.Threshold = 3
	if err := f.repo.RotateRoot(bad, f.keys.Root, next.Root, t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("RotateRoot with unreachable threshold = %v, want ErrInvalid", err)
	}
	if _, ok := f.files()[RootVersionFile(2)]; ok {
		t.Error("refused rotation wrote 2.root.json")
	}
}

// TestStagedTargetsPersist: `cairn firmware sign` and `publish` run as
// separate processes.
func TestStagedTargetsPersist(t *testing.T) {
	f := newFixture(t)
	if err := f.repo.AddTarget("firmware/gw2-2.0.0.bin", 42, strings.Repeat("cd", 32), Firmware{Version: "2.0.0"}); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.RemoveTarget(oldTarget); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.RemoveTarget(oldTarget); !errors.Is(err, ErrNotFound) {
		t.Errorf("removing twice = %v, want ErrNotFound", err)
	}
	if _, ok := f.files()["staged-targets.json"]; ok {
		t.Error("Files() includes the staging file")
	}
	repo, err := OpenRepository(f.repo.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Publish(f.keys, t0); err != nil {
		t.Fatal(err)
	}
	f.serveRepo()
	if err := f.client.Update(t.Context()); err != nil {
		t.Fatal(err)
	}
	all, err := f.client.Targets()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := all["firmware/gw2-2.0.0.bin"]; !ok || len(all) != 2 {
		t.Errorf("targets after publish: %v", slicesOfKeys(all))
	}
}

func slicesOfKeys(m map[string]TargetFile) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestAddTargetValidates(t *testing.T) {
	f := newFixture(t)
	sum := strings.Repeat("ab", 32)
	tests := []struct {
		name   string
		path   string
		length int64
		sum    string
		custom any
	}{
		{"absolute path", "/etc/passwd", 1, sum, nil},
		{"parent directory", "../x.bin", 1, sum, nil},
		{"unclean path", "a//b.bin", 1, sum, nil},
		{"negative length", "a.bin", -1, sum, nil},
		{"short hash", "a.bin", 1, "abcd", nil},
		{"float in custom", "a.bin", 1, sum, map[string]any{"x": 1.5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.repo.AddTarget(tc.path, tc.length, tc.sum, tc.custom); !errors.Is(err, ErrInvalid) {
				t.Errorf("AddTarget = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestInitTwiceRefused(t *testing.T) {
	f := newFixture(t)
	repo, err := OpenRepository(f.repo.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Init(f.cfg, f.keys, t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("second Init = %v, want ErrInvalid", err)
	}
	empty, err := OpenRepository(filepath.Join(t.TempDir(), "new"))
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.Publish(f.keys, t0); !errors.Is(err, ErrInvalid) {
		t.Errorf("Publish before Init = %v, want ErrInvalid", err)
	}
}
