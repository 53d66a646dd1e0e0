package signing

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
)

func newKey(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return priv, base64.StdEncoding.EncodeToString(pub)
}

func TestVerify(t *testing.T) {
	sum := sha256.Sum256([]byte("firmware image"))
	digest := hex.EncodeToString(sum[:])
	other := sha256.Sum256([]byte("tampered image"))

	alice, alicePub := newKey(t)
	bob, bobPub := newKey(t)
	mallory, _ := newKey(t)
	sign := func(k ed25519.PrivateKey, d string) string {
		s, err := Sign(k, d)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	trusted := map[string]string{"alice": alicePub, "bob": bobPub, "alice-again": alicePub, "broken": "AAAA"}

	tests := []struct {
		name         string
		sigs         []Signature
		wantVerified []string
		wantProblems []string
	}{
		{"two valid", []Signature{{"alice", sign(alice, digest)}, {"bob", sign(bob, digest)}}, []string{"alice", "bob"}, nil},
		{"same key twice counts once", []Signature{{"alice", sign(alice, digest)}, {"alice", sign(alice, digest)}}, []string{"alice"}, nil},
		{"one key under two IDs counts once", []Signature{{"alice", sign(alice, digest)}, {"alice-again", sign(alice, digest)}}, []string{"alice"}, []string{`key "alice-again" is the same public key as "alice" and counts once`}},
		{"untrusted key", []Signature{{"mallory", sign(mallory, digest)}}, nil, []string{`key "mallory" is not trusted`}},
		{"wrong signer for key ID", []Signature{{"alice", sign(mallory, digest)}}, nil, []string{`signature by "alice" does not match the digest`}},
		{"signature over other content", []Signature{{"bob", sign(bob, hex.EncodeToString(other[:]))}}, nil, []string{`signature by "bob" does not match the digest`}},
		{"garbage signature", []Signature{{"bob", "!!"}}, nil, []string{`signature by "bob" is not a base64 ed25519 signature`}},
		{"malformed trusted key", []Signature{{"broken", sign(alice, digest)}}, nil, []string{`trusted key "broken": ed25519 public keys are 32 bytes, got 3`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Verify(digest, tc.sigs, trusted)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Verified, tc.wantVerified) {
				t.Errorf("verified = %v, want %v", res.Verified, tc.wantVerified)
			}
			if !reflect.DeepEqual(res.Problems, tc.wantProblems) {
				t.Errorf("problems = %q, want %q", res.Problems, tc.wantProblems)
			}
		})
	}
}

func TestVerifyRejectsBadDigest(t *testing.T) {
	_, err := Verify(strings.Repeat("z", 64), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "not a hex SHA-256") {
		t.Fatalf("err = %v, want a digest error", err)
	}
}
