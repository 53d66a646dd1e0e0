package tuf

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFileRoundTrip(t *testing.T) {
	k := mustKey(t)
	path := filepath.Join(t.TempDir(), "targets.key")
	if err := WriteKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("key file mode %o, want 600", mode)
	}
	if err := WriteKeyFile(path, mustKey(t)); err == nil {
		t.Error("WriteKeyFile overwrote an existing key")
	}
	b, err := k.MarshalKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	if fromSecret, err := ParsePrivateKey(b); err != nil || fromSecret.ID() != k.ID() {
		t.Fatalf("ParsePrivateKey(MarshalKeyFile()) = %v, %v", fromSecret, err)
	}
	got, err := ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != k.ID() || got.Public() != k.Public() {
		t.Fatalf("read key %s, want %s", got.ID(), k.ID())
	}
	msg := []byte("hello")
	if !ed25519.Verify(ed25519.PublicKey(mustHex(t, k.Public().Value.Public)), msg, ed25519.Sign(got.key, msg)) {
		t.Fatal("read key does not sign like the written one")
	}
	b, _ = os.ReadFile(path)
	pub, err := ParseKey(b)
	if err != nil || pub != k.Public() {
		t.Fatalf("ParseKey = %v, %v", pub, err)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeyID: the ID is the SHA-256 of the key's canonical JSON.
func TestKeyID(t *testing.T) {
	k := NewKey(make(ed25519.PublicKey, ed25519.PublicKeySize))
	canonical := `{"keytype":"ed25519","keyval":{"public":"` + strings.Repeat("00", 32) + `"},"scheme":"ed25519"}`
	if want := sha256Hex([]byte(canonical)); k.ID() != want {
		t.Errorf("ID() = %s, want %s", k.ID(), want)
	}
}

func TestPrivateKeyNotLeaked(t *testing.T) {
	k := mustKey(t)
	seed := hex.EncodeToString(k.key.Seed())
	asJSON, _ := json.Marshal(struct{ Key *PrivateKey }{k})
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k), string(asJSON)} {
		if strings.Contains(s, seed) || strings.Contains(s, hex.EncodeToString(k.key)) {
			t.Errorf("formatting leaks the private key: %s", s)
		}
	}
	// A key file whose public half does not match, and a truncated seed.
	bad := `{"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"` + strings.Repeat("ab", 32) + `","private":"` + seed + `"}}`
	short := `{"keytype":"ed25519","scheme":"ed25519","keyval":{"private":"` + seed[:60] + `"}}`
	for _, in := range []string{bad, short, `{"keyval":{"private":"` + seed + `"`} {
		_, err := ParsePrivateKey([]byte(in))
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("ParsePrivateKey = %v, want ErrInvalid", err)
		}
		if err != nil && strings.Contains(err.Error(), seed[:16]) {
			t.Errorf("error leaks the private key: %v", err)
		}
	}
}
