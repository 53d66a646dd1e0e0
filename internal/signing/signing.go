// Package signing verifies and creates the ed25519 signatures that protect
// firmware and other artifacts.
//
// A signature covers the artifact's raw 32-byte SHA-256 digest (not its hex
// form), so signing needs only the digest, and a device checks the same
// bytes it hashed while downloading.
package signing

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sort"
)

// Signature is one signature by the key named KeyID.
type Signature struct {
	KeyID string
	// Value is the standard base64 encoding of the 64-byte signature.
	Value string
}

// Result tells which keys produced a valid signature and why the others did not.
type Result struct {
	// Verified holds the key IDs whose signature is valid, sorted, one per
	// distinct public key: two IDs naming the same key count once.
	Verified []string
	// Problems explains each signature that did not verify, in input order.
	Problems []string
}

// Verify checks sigs over the digest (lowercase hex SHA-256) against the
// trusted public keys (key ID → base64 ed25519 public key).
func Verify(sha256Hex string, sigs []Signature, trusted map[string]string) (Result, error) {
	digest, err := hex.DecodeString(sha256Hex)
	if err != nil || len(digest) != 32 {
		return Result{}, fmt.Errorf("digest %q is not a hex SHA-256", sha256Hex)
	}
	var res Result
	verified := map[string]bool{} // key IDs
	byKey := map[string]string{}  // public key bytes → first key ID that verified
	for _, sig := range sigs {
		keyB64, ok := trusted[sig.KeyID]
		if !ok {
			res.Problems = append(res.Problems, fmt.Sprintf("key %q is not trusted", sig.KeyID))
			continue
		}
		key, err := DecodePublicKey(keyB64)
		if err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("trusted key %q: %v", sig.KeyID, err))
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(sig.Value)
		if err != nil || len(raw) != ed25519.SignatureSize {
			res.Problems = append(res.Problems, fmt.Sprintf("signature by %q is not a base64 ed25519 signature", sig.KeyID))
			continue
		}
		if !ed25519.Verify(key, digest, raw) {
			res.Problems = append(res.Problems, fmt.Sprintf("signature by %q does not match the digest", sig.KeyID))
			continue
		}
		if first, seen := byKey[string(key)]; seen && first != sig.KeyID {
			res.Problems = append(res.Problems, fmt.Sprintf("key %q is the same public key as %q and counts once", sig.KeyID, first))
			continue
		}
		byKey[string(key)] = sig.KeyID
		verified[sig.KeyID] = true
	}
	for id := range verified {
		res.Verified = append(res.Verified, id)
	}
	sort.Strings(res.Verified)
	return res, nil
}

// Sign signs the digest (lowercase hex SHA-256) and returns the base64 value.
func Sign(key ed25519.PrivateKey, sha256Hex string) (string, error) {
	digest, err := hex.DecodeString(sha256Hex)
	if err != nil || len(digest) != 32 {
		return "", fmt.Errorf("digest %q is not a hex SHA-256", sha256Hex)
	}
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, digest)), nil
}

// DecodePublicKey parses a standard base64 ed25519 public key.
func DecodePublicKey(b64 string) (ed25519.PublicKey, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ed25519 public keys are %d bytes, got %d", ed25519.PublicKeySize, len(raw))
	}
	return ed25519.PublicKey(raw), nil
}
