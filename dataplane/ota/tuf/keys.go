package tuf

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"fmt"
	"os"
	"strings"
)

const keyTypeEd25519 = "ed25519"

// Key is a public key as listed in root.json.
type Key struct {
	Type   string   `json:"keytype"`
	Scheme string   `json:"scheme"`
	Value  KeyValue `json:"keyval"`
}

// KeyValue holds the hex-encoded public key.
type KeyValue struct {
	Public string `json:"public"`
}

// NewKey returns the Key for an ed25519 public key.
func NewKey(pub ed25519.PublicKey) Key {
	return Key{Type: keyTypeEd25519, Scheme: keyTypeEd25519, Value: KeyValue{Public: hex.EncodeToString(pub)}}
}

// ID returns the key ID: the hex SHA-256 of the key's canonical JSON.
func (k Key) ID() string {
	b, _ := marshalCanonical(k) // only strings: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// publicKey decodes k, refusing key types other than ed25519.
func (k Key) publicKey() (ed25519.PublicKey, error) {
	if k.Type != keyTypeEd25519 || k.Scheme != keyTypeEd25519 {
		return nil, errorf(ErrInvalid, "unsupported key type %q scheme %q (want ed25519)", k.Type, k.Scheme)
	}
	pub, err := hex.DecodeString(k.Value.Public)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, errorf(ErrInvalid, "ed25519 public key is not %d hex-encoded bytes", ed25519.PublicKeySize)
	}
	return pub, nil
}

// ParseKey parses a public key in the TUF JSON form. Key files holding a
// private key are accepted too; only the public part is returned.
func ParseKey(b []byte) (Key, error) {
	var k Key
	if err := json.Unmarshal(b, &k); err != nil {
		return Key{}, errorf(ErrInvalid, "parsing public key: %w", err)
	}
	if _, err := k.publicKey(); err != nil {
		return Key{}, err
	}
	k.Value.Public = strings.ToLower(k.Value.Public)
	return k, nil
}

// PrivateKey is an ed25519 signing key. Its String and GoString methods print
// only the key ID, so it can be logged without leaking the secret.
type PrivateKey struct {
	public Key
	id     string
	key    ed25519.PrivateKey
}

// keyFile is the on-disk (and Secret) form of a private key.
type keyFile struct {
	Type   string `json:"keytype"`
	Scheme string `json:"scheme"`
	Value  struct {
		Public  string `json:"public"`
		Private string `json:"private"`
	} `json:"keyval"`
}

// GenerateKey returns a new random ed25519 key.
func GenerateKey() (*PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating ed25519 key: %w", err)
	}
	return newPrivateKey(priv), nil
}

func newPrivateKey(priv ed25519.PrivateKey) *PrivateKey {
	pub := NewKey(priv.Public().(ed25519.PublicKey))
	return &PrivateKey{public: pub, id: pub.ID(), key: priv}
}

// Public returns the public half of k.
func (k *PrivateKey) Public() Key { return k.public }

// ID returns the key ID of the public key.
func (k *PrivateKey) ID() string { return k.id }

// String identifies the key without revealing it.
func (k *PrivateKey) String() string { return "ed25519 private key " + k.id }

// GoString keeps %#v from printing the secret.
func (k *PrivateKey) GoString() string { return "tuf.PrivateKey(" + k.id + ")" }

// MarshalKeyFile encodes k in the key file form, including the private seed,
// e.g. for a Kubernetes Secret. It is deliberately not MarshalJSON, so that
// marshalling a struct holding a key does not leak it.
func (k *PrivateKey) MarshalKeyFile() ([]byte, error) {
	var f keyFile
	f.Type, f.Scheme = keyTypeEd25519, keyTypeEd25519
	f.Value.Public = k.public.Value.Public
	f.Value.Private = hex.EncodeToString(k.key.Seed())
	return json.MarshalIndent(f, "", "  ")
}

// ParsePrivateKey parses a key file, e.g. from a Kubernetes Secret. Errors
// never quote the input, which holds the secret.
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	var f keyFile
	if err := json.Unmarshal(b, &f); err != nil {
		// The decoder's message may quote the input: drop it.
		return nil, errorf(ErrInvalid, "private key is not valid JSON")
	}
	if f.Type != keyTypeEd25519 || f.Scheme != keyTypeEd25519 {
		return nil, errorf(ErrInvalid, "unsupported private key type %q scheme %q (want ed25519)", f.Type, f.Scheme)
	}
	seed, err := hex.DecodeString(f.Value.Private)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errorf(ErrInvalid, "private key is not a %d-byte hex-encoded ed25519 seed", ed25519.SeedSize)
	}
	k := newPrivateKey(ed25519.NewKeyFromSeed(seed))
	if f.Value.Public != "" && !strings.EqualFold(f.Value.Public, k.public.Value.Public) {
		return nil, errorf(ErrInvalid, "private key does not match its public key %s", f.Value.Public)
	}
	return k, nil
}

// WriteKeyFile writes k to a new file at path with mode 0600. It refuses to
// overwrite an existing file: losing a signing key cannot be undone.
func WriteKeyFile(path string, k *PrivateKey) (err error) {
	b, err := k.MarshalKeyFile()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing key file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("writing key file %s: %w", path, cerr)
		}
		if err != nil {
			_ = os.Remove(path) // best effort: do not leave a broken key file
		}
	}()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	return nil
}

// ReadKeyFile reads a private key written by WriteKeyFile.
func ReadKeyFile(path string) (*PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	k, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}
