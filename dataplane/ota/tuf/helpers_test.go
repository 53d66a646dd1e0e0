package tuf

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

const (
	oldTarget = "firmware/gw2-1.4.1.bin"
	newTarget = "firmware/gw2-1.4.2.bin"
)

// fixture is a repository with two published releases and a client (on a
// DirStore) that trusts the second. Tests mutate served to play attacker.
type fixture struct {
	t      *testing.T
	repo   *Repository
	keys   Signers
	cfg    RootConfig
	old    map[string][]byte // files of the first release (targets v2)
	served MapFetcher
	store  DirStore
	client *Client
	now    time.Time
}

func mustKey(t *testing.T) *PrivateKey {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func publicKeys(keys []*PrivateKey) []Key {
	var out []Key
	for _, k := range keys {
		out = append(out, k.Public())
	}
	return out
}

// configFor gives each role all keys in s; targets need 2 signatures when it
// has 2 keys.
func configFor(s Signers) RootConfig {
	return RootConfig{
		Root:      RoleKeys{Keys: publicKeys(s.Root), Threshold: 1},
		Targets:   RoleKeys{Keys: publicKeys(s.Targets), Threshold: len(s.Targets)},
		Snapshot:  RoleKeys{Keys: publicKeys(s.Snapshot), Threshold: 1},
		Timestamp: RoleKeys{Keys: publicKeys(s.Timestamp), Threshold: 1},
	}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, now: t0}
	f.keys = Signers{
		Root:      []*PrivateKey{mustKey(t)},
		Targets:   []*PrivateKey{mustKey(t), mustKey(t)},
		Snapshot:  []*PrivateKey{mustKey(t)},
		Timestamp: []*PrivateKey{mustKey(t)},
	}
	f.cfg = configFor(f.keys)
	repo, err := OpenRepository(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	f.repo = repo
	if err := repo.Init(f.cfg, f.keys, t0); err != nil {
		t.Fatal(err)
	}
	f.release(oldTarget, "1.4.1")
	f.old = f.files()
	f.release(newTarget, "1.4.2")
	f.served = MapFetcher(f.files())

	f.store = DirStore(filepath.Join(t.TempDir(), "store"))
	if err := Bootstrap(f.store, f.served[RootVersionFile(1)]); err != nil {
		t.Fatal(err)
	}
	f.client = f.newClient()
	if err := f.client.Update(context.Background()); err != nil {
		t.Fatalf("initial update: %v", err)
	}
	return f
}

func (f *fixture) newClient() *Client {
	f.t.Helper()
	c, err := NewClient(f.store, f.served, func() time.Time { return f.now })
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func firmwareContent(version string) []byte {
	return []byte("gw2 firmware image " + version)
}

// release adds a firmware target and publishes.
func (f *fixture) release(path, version string) {
	f.t.Helper()
	n, sum, err := HashTarget(bytes.NewReader(firmwareContent(version)))
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.repo.AddTarget(path, n, sum, Firmware{Version: version, Models: []string{"gw2"}}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.repo.Publish(f.keys, f.now); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) files() map[string][]byte {
	f.t.Helper()
	files, err := f.repo.Files()
	if err != nil {
		f.t.Fatal(err)
	}
	return files
}

// serveRepo serves the repository's current files.
func (f *fixture) serveRepo() {
	maps.Copy(f.served, f.files())
}

// signedOf decodes the "signed" part of a metadata file into a map.
func signedOf(t *testing.T, b []byte) (map[string]any, []Signature) {
	t.Helper()
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(env.Signed))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m, env.Signatures
}

func versionOf(t *testing.T, b []byte) int64 {
	t.Helper()
	m, _ := signedOf(t, b)
	v, err := m["version"].(json.Number).Int64()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sign signs m with keys (in order, duplicates included).
func sign(t *testing.T, m map[string]any, keys ...*PrivateKey) []byte {
	t.Helper()
	var signers []signer
	for _, k := range keys {
		signers = append(signers, signer{keyID: k.ID(), key: k})
	}
	b, err := signMetadata(m, signers)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bump serves name with its version incremented, edited and signed by keys.
func (f *fixture) bump(name string, edit func(map[string]any), keys ...*PrivateKey) {
	f.t.Helper()
	m, _ := signedOf(f.t, f.served[name])
	m["version"] = versionOf(f.t, f.served[name]) + 1
	if edit != nil {
		edit(m)
	}
	f.served[name] = sign(f.t, m, keys...)
}

func setMeta(name string, mf MetaFile) func(map[string]any) {
	return func(m map[string]any) { m["meta"] = map[string]any{name: mf} }
}

func expiresAt(at time.Time) func(map[string]any) {
	return func(m map[string]any) { m["expires"] = at.Format(time.RFC3339) }
}

func metaOf(t *testing.T, b []byte) MetaFile { return metaFileFor(versionOf(t, b), b) }

// rechainSnapshot serves a new snapshot for the served targets.json.
func (f *fixture) rechainSnapshot() {
	f.bump(SnapshotFile, setMeta(TargetsFile, metaOf(f.t, f.served[TargetsFile])), f.keys.Snapshot...)
}

// rechainTimestamp serves a new timestamp for the served snapshot.json.
func (f *fixture) rechainTimestamp() {
	f.bump(TimestampFile, setMeta(SnapshotFile, metaOf(f.t, f.served[SnapshotFile])), f.keys.Timestamp...)
}

// keepSignatures returns b with only the signatures of the given keys.
func keepSignatures(t *testing.T, b []byte, keys ...*PrivateKey) []byte {
	t.Helper()
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	var kept []Signature
	for _, s := range env.Signatures {
		for _, k := range keys {
			if s.KeyID == k.ID() {
				kept = append(kept, s)
			}
		}
	}
	env.Signatures = kept
	out, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tamper edits the signed part of b, keeping the old signatures.
func tamper(t *testing.T, b []byte, edit func(m map[string]any, sigs []Signature)) []byte {
	t.Helper()
	m, sigs := signedOf(t, b)
	edit(m, sigs)
	signed, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(envelope{Signed: signed, Signatures: sigs})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// storeFiles returns the contents of a DirStore.
func storeFiles(t *testing.T, d DirStore) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(string(d))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(string(d), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}
