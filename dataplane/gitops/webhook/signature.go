package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Provider is the kind of git server a delivery came from, told by the
// header that authenticated it.
type Provider string

// Providers whose deliveries are verified.
const (
	// GitHub signs the body: X-Hub-Signature-256: sha256=<hex HMAC-SHA256>.
	GitHub Provider = "github"
	// Gitea (and Forgejo) sign the body: X-Gitea-Signature: <hex HMAC-SHA256>.
	Gitea Provider = "gitea"
	// GitLabSigned uses GitLab's signing token (the Standard Webhooks
	// scheme): webhook-signature: v1,<base64 HMAC-SHA256 of
	// "<webhook-id>.<webhook-timestamp>.<body>">, with a timestamp that
	// bounds replays.
	GitLabSigned Provider = "gitlab-signed"
	// GitLabToken is GitLab's older secret token, sent as is in
	// X-Gitlab-Token. It proves only that the sender knows the token, not
	// that the body is unchanged; prefer a signing token.
	GitLabToken Provider = "gitlab-token"
)

// MaxClockSkew bounds how old (or how far in the future) a timestamped
// signature may be, so a captured delivery cannot be replayed later.
const MaxClockSkew = 5 * time.Minute

var (
	// ErrNoSignature means the request carries none of the known signature
	// headers.
	ErrNoSignature = errors.New("no signature header (X-Hub-Signature-256, X-Gitea-Signature, webhook-signature or X-Gitlab-Token)")
	// ErrBadSignature means a signature is present but does not match.
	ErrBadSignature = errors.New("signature does not match")
	// ErrStale means a timestamped signature is outside MaxClockSkew.
	ErrStale = errors.New("signature timestamp is too old or in the future")
)

// Verify checks the delivery's signature with the shared token and returns
// the provider whose scheme it used. Comparisons are constant-time. A
// GitLab signing token may be given as "whsec_<base64 key>", as GitLab shows
// it, or as the raw key.
func Verify(h http.Header, body, token []byte, now time.Time) (Provider, error) {
	if len(token) == 0 {
		return "", errors.New("empty webhook token")
	}
	switch {
	case h.Get("X-Hub-Signature-256") != "":
		hexSig, ok := strings.CutPrefix(h.Get("X-Hub-Signature-256"), "sha256=")
		if !ok {
			return GitHub, fmt.Errorf("%w: X-Hub-Signature-256 must start with sha256=", ErrBadSignature)
		}
		return GitHub, checkHex(hexSig, bodyMAC(token, body))
	case h.Get("X-Gitea-Signature") != "" || h.Get("X-Forgejo-Signature") != "":
		sig := h.Get("X-Gitea-Signature")
		if sig == "" {
			sig = h.Get("X-Forgejo-Signature")
		}
		return Gitea, checkHex(sig, bodyMAC(token, body))
	case h.Get("Webhook-Signature") != "":
		return GitLabSigned, verifyStandard(h, body, token, now)
	case h.Get("X-Gitlab-Token") != "":
		if subtle.ConstantTimeCompare([]byte(h.Get("X-Gitlab-Token")), token) != 1 {
			return GitLabToken, ErrBadSignature
		}
		return GitLabToken, nil
	}
	return "", ErrNoSignature
}

// signed reports whether h carries one of the headers Verify checks.
func signed(h http.Header) bool {
	for _, k := range []string{"X-Hub-Signature-256", "X-Gitea-Signature", "X-Forgejo-Signature", "Webhook-Signature", "X-Gitlab-Token"} {
		if h.Get(k) != "" {
			return true
		}
	}
	return false
}

// Sign returns the X-Hub-Signature-256 value GitHub would send for body, for
// tests and for `curl`-ing the receiver by hand.
func Sign(token, body []byte) string {
	return "sha256=" + hex.EncodeToString(bodyMAC(token, body))
}

// SignStandard returns the webhook-signature value of the Standard Webhooks
// scheme (GitLab signing tokens) for a delivery id and Unix timestamp.
func SignStandard(token []byte, id string, timestamp int64, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(standardMAC(standardKey(token), id, timestamp, body))
}

func bodyMAC(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)
}

func checkHex(sig string, want []byte) error {
	got, err := hex.DecodeString(strings.TrimSpace(sig))
	if err != nil || !hmac.Equal(got, want) {
		return ErrBadSignature
	}
	return nil
}

func verifyStandard(h http.Header, body, token []byte, now time.Time) error {
	id, ts := h.Get("Webhook-Id"), h.Get("Webhook-Timestamp")
	if id == "" || ts == "" {
		return fmt.Errorf("%w: webhook-signature needs webhook-id and webhook-timestamp", ErrBadSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: webhook-timestamp %q is not Unix seconds", ErrBadSignature, ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > MaxClockSkew || d < -MaxClockSkew {
		return ErrStale
	}
	want := standardMAC(standardKey(token), id, sec, body)
	// Several space-separated signatures may be sent during key rotation.
	for _, s := range strings.Fields(h.Get("Webhook-Signature")) {
		version, b64, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		if got, err := base64.StdEncoding.DecodeString(b64); err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrBadSignature
}

func standardKey(token []byte) []byte {
	if b64, ok := strings.CutPrefix(string(token), "whsec_"); ok {
		if key, err := base64.StdEncoding.DecodeString(b64); err == nil {
			return key
		}
	}
	return token
}

func standardMAC(key []byte, id string, timestamp int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.", id, timestamp)
	m.Write(body)
	return m.Sum(nil)
}
