package tuf

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cairn-platform/cairn/internal/atomicfile"
)

// stagedTargetsFile holds unsigned target changes between AddTarget and
// Publish, so that `cairn firmware sign` and `publish` can run separately.
const stagedTargetsFile = "staged-targets.json"

var rootChainFile = regexp.MustCompile(`^[1-9][0-9]*\.root\.json$`)

// Expiry sets how long newly signed metadata stays valid.
type Expiry struct {
	Root, Targets, Snapshot, Timestamp time.Duration
}

// DefaultExpiry returns the default validity periods: root 1 year, targets 90
// days, snapshot 7 days, timestamp 1 day. Short timestamp validity bounds
// how long an attacker can freeze a device on old metadata.
func DefaultExpiry() Expiry {
	const day = 24 * time.Hour
	return Expiry{Root: 365 * day, Targets: 90 * day, Snapshot: 7 * day, Timestamp: day}
}

func (e Expiry) validate() error {
	if e.Root <= 0 || e.Targets <= 0 || e.Snapshot <= 0 || e.Timestamp <= 0 {
		return errorf(ErrInvalid, "expiry periods must be positive (root %v, targets %v, snapshot %v, timestamp %v)",
			e.Root, e.Targets, e.Snapshot, e.Timestamp)
	}
	return nil
}

// RoleKeys lists the public keys of a role and how many must sign.
type RoleKeys struct {
	Keys      []Key
	Threshold int
}

// RootConfig describes the keys of all top-level roles.
type RootConfig struct {
	Root, Targets, Snapshot, Timestamp RoleKeys
}

// Signers holds the private keys available for signing, per role.
type Signers struct {
	Root, Targets, Snapshot, Timestamp []*PrivateKey
}

// Repository creates and signs metadata in a directory. It is not safe for
// concurrent use, nor for use by several processes on one directory.
type Repository struct {
	// Expiry sets the validity of metadata signed from now on.
	Expiry Expiry

	dir       string
	root      *Root
	targets   *Targets // including staged changes
	snapshot  *Snapshot
	timestamp *Timestamp
}

// OpenRepository opens the repository in dir, creating dir if missing.
func OpenRepository(dir string) (*Repository, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("opening repository: %w", err)
	}
	r := &Repository{Expiry: DefaultExpiry(), dir: dir}
	var (
		root Root
		sn   Snapshot
		ts   Timestamp
		tg   Targets
	)
	ok, err := r.load(RootFile, RoleRoot, &root)
	if err != nil || !ok {
		return r, err
	}
	r.root = &root
	if ok, err := r.load(SnapshotFile, RoleSnapshot, &sn); err != nil {
		return nil, err
	} else if ok {
		r.snapshot = &sn
	}
	if ok, err := r.load(TimestampFile, RoleTimestamp, &ts); err != nil {
		return nil, err
	} else if ok {
		r.timestamp = &ts
	}
	if ok, err := r.load(TargetsFile, RoleTargets, &tg); err != nil {
		return nil, err
	} else if ok {
		r.targets = &tg
	}
	b, err := os.ReadFile(filepath.Join(dir, stagedTargetsFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("opening repository: %w", err)
	default:
		var staged Targets
		if err := json.Unmarshal(b, &staged); err != nil {
			return nil, errorf(ErrInvalid, "%s: %w", filepath.Join(dir, stagedTargetsFile), err)
		}
		r.targets = &staged
	}
	return r, nil
}

// load reads the signed part of a published file without verifying
// signatures: the repository trusts its own directory.
func (r *Repository) load(name, role string, m metadata) (bool, error) {
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("opening repository: %w", err)
	}
	signed, _, err := readEnvelope(name, b)
	if err != nil {
		return false, err
	}
	return true, decodeSigned(name, signed, role, m)
}

// newRoot builds root metadata from cfg.
func (cfg RootConfig) newRoot(version int64, expires time.Time) (*Root, error) {
	root := &Root{
		Header: newHeader(RoleRoot, version, expires),
		Keys:   map[string]Key{},
		Roles:  map[string]Role{},
	}
	for role, rk := range map[string]RoleKeys{
		RoleRoot: cfg.Root, RoleTargets: cfg.Targets, RoleSnapshot: cfg.Snapshot, RoleTimestamp: cfg.Timestamp,
	} {
		def := Role{KeyIDs: []string{}, Threshold: rk.Threshold}
		for _, k := range rk.Keys {
			if _, err := k.publicKey(); err != nil {
				return nil, fmt.Errorf("%s role: %w", role, err)
			}
			k.Value.Public = strings.ToLower(k.Value.Public)
			id := k.ID()
			if !slices.Contains(def.KeyIDs, id) {
				def.KeyIDs = append(def.KeyIDs, id)
			}
			root.Keys[id] = k
		}
		if rk.Threshold < 1 || rk.Threshold > len(def.KeyIDs) {
			return nil, errorf(ErrInvalid, "%s role: threshold %d must be between 1 and its %d distinct keys", role, rk.Threshold, len(def.KeyIDs))
		}
		root.Roles[role] = def
	}
	return root, nil
}

func (r *Repository) requireInit() error {
	if r.root == nil {
		return errorf(ErrInvalid, "repository %s is not initialized", r.dir)
	}
	return nil
}

// Init creates version 1 of root.json (also written as 1.root.json) and
// empty targets, snapshot and timestamp metadata, signed by s.
func (r *Repository) Init(cfg RootConfig, s Signers, now time.Time) error {
	if r.root != nil {
		return errorf(ErrInvalid, "repository %s is already initialized (root.json version %d)", r.dir, r.root.Version)
	}
	if err := r.Expiry.validate(); err != nil {
		return err
	}
	root, err := cfg.newRoot(1, now.Add(r.Expiry.Root))
	if err != nil {
		return err
	}
	signers, err := roleSigners(RootFile, root, RoleRoot, s.Root)
	if err != nil {
		return err
	}
	rootJSON, err := signMetadata(root, signers)
	if err != nil {
		return err
	}
	empty := &Targets{Header: newHeader(RoleTargets, 0, now), Targets: map[string]TargetFile{}}
	p, err := r.sign(root, empty, s, now)
	if err != nil {
		return err
	}
	files := append([]file{{RootVersionFile(1), rootJSON}, {RootFile, rootJSON}}, p.files...)
	if err := r.write(files); err != nil {
		return err
	}
	r.root = root
	r.apply(p)
	return nil
}

// AddTarget adds or replaces a target. custom (e.g. a Firmware) is stored as
// the target's custom metadata; it must encode to JSON without fractional
// numbers. The change is staged until Publish.
func (r *Repository) AddTarget(targetPath string, length int64, sha256hex string, custom any) error {
	if err := r.requireInit(); err != nil {
		return err
	}
	if err := checkTargetPath(targetPath); err != nil {
		return err
	}
	if length < 0 {
		return errorf(ErrInvalid, "target %s: negative length %d", targetPath, length)
	}
	if b, err := hex.DecodeString(sha256hex); err != nil || len(b) != sha256.Size {
		return errorf(ErrInvalid, "target %s: sha256 %q is not 64 hex digits", targetPath, sha256hex)
	}
	t := TargetFile{Length: length, Hashes: map[string]string{"sha256": strings.ToLower(sha256hex)}}
	if custom != nil {
		b, err := marshalCanonical(custom)
		if err != nil {
			return fmt.Errorf("target %s: custom metadata: %w", targetPath, err)
		}
		t.Custom = b
	}
	staged := r.staged()
	staged.Targets[targetPath] = t
	return r.stage(staged)
}

// RemoveTarget removes a target; the change is staged until Publish.
func (r *Repository) RemoveTarget(targetPath string) error {
	if err := r.requireInit(); err != nil {
		return err
	}
	staged := r.staged()
	if _, ok := staged.Targets[targetPath]; !ok {
		return errorf(ErrNotFound, "target %s is not in the repository", targetPath)
	}
	delete(staged.Targets, targetPath)
	return r.stage(staged)
}

// Targets returns the targets including staged changes.
func (r *Repository) Targets() map[string]TargetFile {
	out := map[string]TargetFile{}
	if r.targets != nil {
		for p, t := range r.targets.Targets {
			t = t.clone()
			t.Path = p
			out[p] = t
		}
	}
	return out
}

// checkTargetPath refuses paths that could escape a download directory.
func checkTargetPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || path.Clean(p) != p || strings.HasPrefix(p, "../") || p == ".." {
		return errorf(ErrInvalid, "target path %q must be a clean relative path", p)
	}
	return nil
}

func (r *Repository) staged() *Targets {
	t := Targets{Header: newHeader(RoleTargets, 0, time.Time{})}
	if r.targets != nil {
		t = *r.targets
	}
	t.Targets = maps.Clone(t.Targets)
	if t.Targets == nil {
		t.Targets = map[string]TargetFile{}
	}
	return &t
}

func (r *Repository) stage(t *Targets) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("staging targets: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(r.dir, stagedTargetsFile), b, 0o644); err != nil {
		return fmt.Errorf("staging targets: %w", err)
	}
	r.targets = t
	return nil
}

// Publish signs the (staged) targets as a new version of targets.json, then
// new versions of snapshot.json and timestamp.json, with s's targets,
// snapshot and timestamp keys.
func (r *Repository) Publish(s Signers, now time.Time) error {
	if err := r.requireInit(); err != nil {
		return err
	}
	if err := checkExpiry(RootFile, &r.root.Header, now); err != nil {
		return fmt.Errorf("%w; rotate the root before publishing", err)
	}
	if err := r.Expiry.validate(); err != nil {
		return err
	}
	p, err := r.sign(r.root, r.staged(), s, now)
	if err != nil {
		return err
	}
	if err := r.write(p.files); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(r.dir, stagedTargetsFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("publishing: %w", err)
	}
	r.apply(p)
	return nil
}

type file struct {
	name string
	data []byte
}

type published struct {
	targets   *Targets
	snapshot  *Snapshot
	timestamp *Timestamp
	files     []file
}

// sign signs targets, a snapshot and a timestamp, each one version above the
// current. Everything is signed before anything is written, so a missing key
// leaves the repository unchanged.
func (r *Repository) sign(root *Root, targets *Targets, s Signers, now time.Time) (*published, error) {
	tg := *targets
	tg.Header = newHeader(RoleTargets, targets.Version+1, now.Add(r.Expiry.Targets))
	targetsJSON, err := r.signRole(root, TargetsFile, RoleTargets, &tg, s.Targets)
	if err != nil {
		return nil, err
	}
	sn := &Snapshot{
		Header: newHeader(RoleSnapshot, r.version(RoleSnapshot)+1, now.Add(r.Expiry.Snapshot)),
		Meta:   map[string]MetaFile{TargetsFile: metaFileFor(tg.Version, targetsJSON)},
	}
	snapshotJSON, err := r.signRole(root, SnapshotFile, RoleSnapshot, sn, s.Snapshot)
	if err != nil {
		return nil, err
	}
	ts, timestampJSON, err := r.signTimestamp(root, snapshotJSON, sn.Version, s.Timestamp, now)
	if err != nil {
		return nil, err
	}
	// Timestamp last: a client reading the directory meanwhile sees the old
	// timestamp until the files it points to exist.
	return &published{
		targets: &tg, snapshot: sn, timestamp: ts,
		files: []file{{TargetsFile, targetsJSON}, {SnapshotFile, snapshotJSON}, {TimestampFile, timestampJSON}},
	}, nil
}

func (r *Repository) signTimestamp(root *Root, snapshotJSON []byte, snapshotVersion int64, keys []*PrivateKey, now time.Time) (*Timestamp, []byte, error) {
	ts := &Timestamp{
		Header: newHeader(RoleTimestamp, r.version(RoleTimestamp)+1, now.Add(r.Expiry.Timestamp)),
		Meta:   map[string]MetaFile{SnapshotFile: metaFileFor(snapshotVersion, snapshotJSON)},
	}
	b, err := r.signRole(root, TimestampFile, RoleTimestamp, ts, keys)
	return ts, b, err
}

func (r *Repository) version(role string) int64 {
	switch {
	case role == RoleSnapshot && r.snapshot != nil:
		return r.snapshot.Version
	case role == RoleTimestamp && r.timestamp != nil:
		return r.timestamp.Version
	}
	return 0
}

func (r *Repository) signRole(root *Root, name, role string, m any, keys []*PrivateKey) ([]byte, error) {
	signers, err := roleSigners(name, root, role, keys)
	if err != nil {
		return nil, err
	}
	return signMetadata(m, signers)
}

func (r *Repository) apply(p *published) {
	r.targets, r.snapshot, r.timestamp = p.targets, p.snapshot, p.timestamp
}

// RefreshTimestamp signs a new timestamp.json for the current snapshot, to
// extend its validity without other changes (run it more often than the
// timestamp expiry).
func (r *Repository) RefreshTimestamp(now time.Time, keys ...*PrivateKey) error {
	if err := r.requireInit(); err != nil {
		return err
	}
	if err := checkExpiry(RootFile, &r.root.Header, now); err != nil {
		return fmt.Errorf("%w; rotate the root first", err)
	}
	if err := r.Expiry.validate(); err != nil {
		return err
	}
	if r.snapshot == nil {
		return errorf(ErrInvalid, "repository %s has no snapshot.json to refer to", r.dir)
	}
	snapshotJSON, err := os.ReadFile(filepath.Join(r.dir, SnapshotFile))
	if err != nil {
		return fmt.Errorf("refreshing timestamp: %w", err)
	}
	ts, b, err := r.signTimestamp(r.root, snapshotJSON, r.snapshot.Version, keys, now)
	if err != nil {
		return err
	}
	if err := r.write([]file{{TimestampFile, b}}); err != nil {
		return err
	}
	r.timestamp = ts
	return nil
}

// RotateRoot writes the next root version with the keys in cfg, signed by a
// threshold of the current root keys (oldKeys) and of the new ones
// (newKeys), as clients require. If the targets, snapshot or timestamp keys
// changed, Publish with the new keys next: the current files are signed by
// the old ones.
func (r *Repository) RotateRoot(cfg RootConfig, oldKeys, newKeys []*PrivateKey, now time.Time) error {
	if err := r.requireInit(); err != nil {
		return err
	}
	if err := r.Expiry.validate(); err != nil {
		return err
	}
	name := RootVersionFile(r.root.Version + 1)
	root, err := cfg.newRoot(r.root.Version+1, now.Add(r.Expiry.Root))
	if err != nil {
		return err
	}
	oldSigners, err := roleSigners(name, r.root, RoleRoot, oldKeys)
	if err != nil {
		return fmt.Errorf("%w (current root keys)", err)
	}
	newSigners, err := roleSigners(name, root, RoleRoot, newKeys)
	if err != nil {
		return fmt.Errorf("%w (new root keys)", err)
	}
	signers := oldSigners
	for _, s := range newSigners {
		if !containsSigner(signers, s) {
			signers = append(signers, s)
		}
	}
	b, err := signMetadata(root, signers)
	if err != nil {
		return err
	}
	if err := r.write([]file{{name, b}, {RootFile, b}}); err != nil {
		return err
	}
	r.root = root
	return nil
}

func containsSigner(list []signer, s signer) bool {
	for _, x := range list {
		if x.keyID == s.keyID && x.key.id == s.key.id {
			return true
		}
	}
	return false
}

func (r *Repository) write(files []file) error {
	for _, f := range files {
		if err := atomicfile.WriteFile(filepath.Join(r.dir, f.name), f.data, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
	}
	return nil
}

// Files returns the published metadata by file name, e.g. for a ConfigMap.
func (r *Repository) Files() (map[string][]byte, error) {
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fmt.Errorf("listing repository: %w", err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		name := e.Name()
		switch name {
		case RootFile, TargetsFile, SnapshotFile, TimestampFile:
		default:
			if !rootChainFile.MatchString(name) {
				continue
			}
		}
		b, err := os.ReadFile(filepath.Join(r.dir, name))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		out[name] = b
	}
	return out, nil
}

// HashTarget returns the length and hex SHA-256 of a target's content, as
// AddTarget wants them.
func HashTarget(rd io.Reader) (int64, string, error) {
	h := sha256.New()
	n, err := io.Copy(h, rd)
	if err != nil {
		return 0, "", fmt.Errorf("hashing target: %w", err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
