package tuf

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"
)

// SpecVersion is the TUF specification version written into metadata.
const SpecVersion = "1.0.31"

// Role names.
const (
	RoleRoot      = "root"
	RoleTargets   = "targets"
	RoleSnapshot  = "snapshot"
	RoleTimestamp = "timestamp"
)

// Metadata file names.
const (
	RootFile      = "root.json"
	TargetsFile   = "targets.json"
	SnapshotFile  = "snapshot.json"
	TimestampFile = "timestamp.json"
)

var topLevelRoles = []string{RoleRoot, RoleTargets, RoleSnapshot, RoleTimestamp}

// RootVersionFile names version n in the root chain ("2.root.json").
func RootVersionFile(n int64) string { return fmt.Sprintf("%d.%s", n, RootFile) }

// Header holds the fields common to every role's "signed" section.
type Header struct {
	Type        string    `json:"_type"`
	SpecVersion string    `json:"spec_version"`
	Version     int64     `json:"version"`
	Expires     time.Time `json:"expires"`
}

func (h *Header) header() *Header { return h }

// metadata is implemented by pointers to Root, Targets, Snapshot, Timestamp.
type metadata interface{ header() *Header }

func newHeader(role string, version int64, expires time.Time) Header {
	// Whole seconds in UTC: the spec's "2030-01-01T00:00:00Z" form.
	return Header{Type: role, SpecVersion: SpecVersion, Version: version, Expires: expires.UTC().Truncate(time.Second)}
}

// Role lists the keys trusted for a role and how many must sign.
type Role struct {
	KeyIDs    []string `json:"keyids"`
	Threshold int      `json:"threshold"`
}

// Root is the signed part of root.json.
type Root struct {
	Header
	Keys               map[string]Key  `json:"keys"`
	Roles              map[string]Role `json:"roles"`
	ConsistentSnapshot bool            `json:"consistent_snapshot"`
}

// MetaFile records the version, and optionally length and hashes, of a
// metadata file in snapshot.json and timestamp.json.
type MetaFile struct {
	Version int64             `json:"version"`
	Length  int64             `json:"length,omitempty"`
	Hashes  map[string]string `json:"hashes,omitempty"`
}

// Snapshot is the signed part of snapshot.json.
type Snapshot struct {
	Header
	Meta map[string]MetaFile `json:"meta"`
}

// Timestamp is the signed part of timestamp.json.
type Timestamp struct {
	Header
	Meta map[string]MetaFile `json:"meta"`
}

// Targets is the signed part of targets.json.
type Targets struct {
	Header
	Targets map[string]TargetFile `json:"targets"`
}

// TargetFile describes a target (a firmware image).
type TargetFile struct {
	// Path is the target's name in targets.json; set by Client.Target.
	Path   string            `json:"-"`
	Length int64             `json:"length"`
	Hashes map[string]string `json:"hashes"`
	// Custom is application metadata; see Firmware.
	Custom json.RawMessage `json:"custom,omitempty"`
}

// Firmware is the custom metadata of a firmware target.
type Firmware struct {
	Version string   `json:"version"`
	Models  []string `json:"models"`
	// SBOM pins the release's software bill of materials, so the SBOM a
	// scan gate judges is the one the release was signed with.
	SBOM *SBOMDigest `json:"sbom,omitempty"`
}

// SBOMDigest identifies an SBOM document (uncompressed) by length and
// SHA-256 (lowercase hex).
type SBOMDigest struct {
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
}

// Firmware decodes the target's custom metadata.
func (t TargetFile) Firmware() (Firmware, error) {
	var f Firmware
	if len(t.Custom) == 0 {
		return f, errorf(ErrNotFound, "target %s has no custom firmware metadata", t.Path)
	}
	if err := json.Unmarshal(t.Custom, &f); err != nil {
		return f, errorf(ErrInvalid, "target %s: custom firmware metadata: %w", t.Path, err)
	}
	return f, nil
}

// Check compares a length and hex SHA-256 with the target's.
func (t TargetFile) Check(length int64, sha256hex string) error {
	if length != t.Length {
		return errorf(ErrMismatch, "target %s is %d bytes, targets.json says %d", t.Path, length, t.Length)
	}
	want, ok := t.Hashes["sha256"]
	if !ok {
		return errorf(ErrInvalid, "target %s has no sha256 hash in targets.json", t.Path)
	}
	if !strings.EqualFold(sha256hex, want) {
		return errorf(ErrMismatch, "target %s has sha256 %s, targets.json says %s", t.Path, sha256hex, want)
	}
	return nil
}

// Verify reads r to the end and checks its length and SHA-256. It reads at
// most one byte more than the expected length, so an endless stream fails.
func (t TargetFile) Verify(r io.Reader) error {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, t.Length+1))
	if err != nil {
		return fmt.Errorf("reading target %s: %w", t.Path, err)
	}
	if n > t.Length {
		return errorf(ErrMismatch, "target %s is longer than the %d bytes in targets.json", t.Path, t.Length)
	}
	return t.Check(n, hex.EncodeToString(h.Sum(nil)))
}

func (t TargetFile) clone() TargetFile {
	t.Hashes = maps.Clone(t.Hashes)
	t.Custom = bytes.Clone(t.Custom)
	return t
}

// Signature is one entry of an envelope's "signatures".
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

type envelope struct {
	Signed     json.RawMessage `json:"signed"`
	Signatures []Signature     `json:"signatures"`
}

// readEnvelope returns the canonical form of b's "signed" value and the
// signatures.
func readEnvelope(name string, b []byte) ([]byte, []Signature, error) {
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, nil, errorf(ErrInvalid, "%s: %w", name, err)
	}
	if len(env.Signed) == 0 {
		return nil, nil, errorf(ErrInvalid, "%s: no \"signed\" section", name)
	}
	signed, err := Canonicalize(env.Signed)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return signed, env.Signatures, nil
}

// decodeSigned decodes the canonical "signed" bytes into m and checks the
// header. It must only run on signed bytes whose signatures verified.
func decodeSigned(name string, signed []byte, role string, m metadata) error {
	if err := json.Unmarshal(signed, m); err != nil {
		return errorf(ErrInvalid, "%s: %w", name, err)
	}
	h := m.header()
	switch {
	case h.Type != role:
		return errorf(ErrInvalid, "%s: _type is %q, want %q", name, h.Type, role)
	case !strings.HasPrefix(h.SpecVersion, "1."):
		return errorf(ErrInvalid, "%s: unsupported spec_version %q", name, h.SpecVersion)
	case h.Version < 1:
		return errorf(ErrInvalid, "%s: version %d is not positive", name, h.Version)
	case h.Expires.IsZero():
		return errorf(ErrInvalid, "%s: no expiry", name)
	}
	return nil
}

// verifyMetadata checks that a threshold of the keys that keys assigns to role
// signed b, then decodes it into m.
func verifyMetadata(name string, b []byte, role string, keys *Root, m metadata) error {
	signed, sigs, err := readEnvelope(name, b)
	if err != nil {
		return err
	}
	if err := verifySignatures(name, keys, role, signed, sigs, ""); err != nil {
		return err
	}
	return decodeSigned(name, signed, role, m)
}

// verifySignatures counts the valid signatures over signed by distinct keys
// of role in root. Each public key counts once, even if it signed twice or is
// listed under several key IDs. by describes the keys in the error message.
func verifySignatures(name string, root *Root, role string, signed []byte, sigs []Signature, by string) error {
	r, ok := root.Roles[role]
	if !ok || r.Threshold < 1 {
		return errorf(ErrInvalid, "%s: root.json version %d defines no %s role", name, root.Version, role)
	}
	allowed := make(map[string]bool, len(r.KeyIDs))
	for _, id := range r.KeyIDs {
		allowed[id] = true
	}
	counted := map[string]bool{} // public keys whose signature verified
	valid := 0
	for _, s := range sigs {
		key, ok := root.Keys[s.KeyID]
		if !allowed[s.KeyID] || !ok {
			continue
		}
		pub, err := key.publicKey()
		if err != nil || counted[string(pub)] {
			continue
		}
		sig, err := hex.DecodeString(s.Sig)
		if err != nil || len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, signed, sig) {
			continue
		}
		counted[string(pub)] = true
		valid++
	}
	if valid < r.Threshold {
		if by != "" {
			by = " by " + by
		}
		return errorf(ErrSignatures, "%s: %d of the required %d signatures%s verify", name, valid, r.Threshold, by)
	}
	return nil
}

// validate checks that root defines every top-level role with usable keys.
func (r *Root) validate(name string) error {
	for _, role := range topLevelRoles {
		def, ok := r.Roles[role]
		if !ok {
			return errorf(ErrInvalid, "%s: no %s role", name, role)
		}
		if def.Threshold < 1 {
			return errorf(ErrInvalid, "%s: %s threshold %d is not positive", name, role, def.Threshold)
		}
		for _, id := range def.KeyIDs {
			key, ok := r.Keys[id]
			if !ok {
				return errorf(ErrInvalid, "%s: %s key %s is not in keys", name, role, id)
			}
			if _, err := key.publicKey(); err != nil {
				return fmt.Errorf("%s: %s key %s: %w", name, role, id, err)
			}
		}
	}
	return nil
}

// checkExpiry refuses metadata that expires at or before now.
func checkExpiry(name string, h *Header, now time.Time) error {
	if !now.Before(h.Expires) {
		return errorf(ErrExpired, "%s expired at %s", name, h.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkMetaFile compares b with the length and hashes that referrer recorded.
func checkMetaFile(name string, b []byte, m MetaFile, referrer string) error {
	if m.Length > 0 && int64(len(b)) != m.Length {
		return metaMismatchf("%s is %d bytes, %s says %d (mix-and-match attack?)", name, len(b), referrer, m.Length)
	}
	if len(m.Hashes) == 0 {
		return nil
	}
	want, ok := m.Hashes["sha256"]
	if !ok {
		return errorf(ErrInvalid, "%s: %s records no sha256 hash", referrer, name)
	}
	if got := sha256Hex(b); !strings.EqualFold(got, want) {
		return metaMismatchf("%s has sha256 %s, %s says %s (mix-and-match attack?)", name, got, referrer, want)
	}
	return nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// metaFileFor records b as version of a metadata file.
func metaFileFor(version int64, b []byte) MetaFile {
	return MetaFile{Version: version, Length: int64(len(b)), Hashes: map[string]string{"sha256": sha256Hex(b)}}
}

// signer is a private key with the key ID root lists it under.
type signer struct {
	keyID string
	key   *PrivateKey
}

// roleSigners picks the keys to sign name for role, refusing keys that root
// does not list for role and fewer distinct keys than the threshold.
func roleSigners(name string, root *Root, role string, keys []*PrivateKey) ([]signer, error) {
	def := root.Roles[role]
	idByPublic := map[string]string{}
	for _, id := range def.KeyIDs {
		if k, ok := root.Keys[id]; ok {
			idByPublic[strings.ToLower(k.Value.Public)] = id
		}
	}
	var out []signer
	seen := map[string]bool{}
	for _, k := range keys {
		pub := k.public.Value.Public
		id, ok := idByPublic[pub]
		if !ok {
			return nil, errorf(ErrSignatures, "cannot sign %s: key %s is not a %s key of root.json version %d", name, k.id, role, root.Version)
		}
		if !seen[pub] {
			seen[pub] = true
			out = append(out, signer{keyID: id, key: k})
		}
	}
	if len(out) < def.Threshold {
		return nil, errorf(ErrSignatures, "cannot sign %s: %d of the required %d %s keys given", name, len(out), def.Threshold, role)
	}
	return out, nil
}

// signMetadata returns the envelope of m signed by signers, indented for
// people reading the files (signatures cover the canonical form).
func signMetadata(m any, signers []signer) ([]byte, error) {
	signed, err := marshalCanonical(m)
	if err != nil {
		return nil, fmt.Errorf("encoding metadata: %w", err)
	}
	env := envelope{Signed: signed, Signatures: []Signature{}}
	for _, s := range signers {
		sig := ed25519.Sign(s.key.key, signed)
		env.Signatures = append(env.Signatures, Signature{KeyID: s.keyID, Sig: hex.EncodeToString(sig)})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(env); err != nil {
		return nil, fmt.Errorf("encoding metadata: %w", err)
	}
	return buf.Bytes(), nil
}
