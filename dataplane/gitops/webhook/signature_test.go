package webhook

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
)

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	token := []byte("s3cret")
	body := []byte(`{"ref":"refs/heads/main"}`)
	rawKey := []byte("0123456789abcdef0123456789abcdef")
	whsec := []byte("whsec_" + base64.StdEncoding.EncodeToString(rawKey))
	headers := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	old := strconv.FormatInt(now.Add(-10*time.Minute).Unix(), 10)

	tests := []struct {
		name     string
		h        http.Header
		token    []byte
		body     []byte
		want     Provider
		wantErr  error
		wantNone bool
	}{
		{name: "github valid", h: headers("X-Hub-Signature-256", Sign(token, body)), want: GitHub},
		{name: "github other token", h: headers("X-Hub-Signature-256", Sign([]byte("other"), body)), want: GitHub, wantErr: ErrBadSignature},
		{name: "github body changed", h: headers("X-Hub-Signature-256", Sign(token, body)), body: []byte(`{"ref":"refs/heads/evil"}`), want: GitHub, wantErr: ErrBadSignature},
		{name: "github sha1 prefix", h: headers("X-Hub-Signature-256", "sha1=abcd"), want: GitHub, wantErr: ErrBadSignature},
		{name: "github not hex", h: headers("X-Hub-Signature-256", "sha256=zz"), want: GitHub, wantErr: ErrBadSignature},
		{name: "gitea valid", h: headers("X-Gitea-Signature", Sign(token, body)[len("sha256="):]), want: Gitea},
		{name: "forgejo valid", h: headers("X-Forgejo-Signature", Sign(token, body)[len("sha256="):]), want: Gitea},
		{name: "gitea wrong", h: headers("X-Gitea-Signature", Sign(token, []byte("x"))[len("sha256="):]), want: Gitea, wantErr: ErrBadSignature},
		{name: "gitlab signed whsec", token: whsec, h: headers("Webhook-Id", "d1", "Webhook-Timestamp", ts, "Webhook-Signature", SignStandard(whsec, "d1", now.Unix(), body)), want: GitLabSigned},
		{name: "gitlab signed raw key, rotated list", h: headers("Webhook-Id", "d1", "Webhook-Timestamp", ts, "Webhook-Signature", "v1,AAAA "+SignStandard(token, "d1", now.Unix(), body)), want: GitLabSigned},
		{name: "gitlab signed other id", h: headers("Webhook-Id", "d2", "Webhook-Timestamp", ts, "Webhook-Signature", SignStandard(token, "d1", now.Unix(), body)), want: GitLabSigned, wantErr: ErrBadSignature},
		{name: "gitlab signed replayed later", h: headers("Webhook-Id", "d1", "Webhook-Timestamp", old, "Webhook-Signature", SignStandard(token, "d1", now.Add(-10*time.Minute).Unix(), body)), want: GitLabSigned, wantErr: ErrStale},
		{name: "gitlab signed no timestamp", h: headers("Webhook-Id", "d1", "Webhook-Signature", SignStandard(token, "d1", now.Unix(), body)), want: GitLabSigned, wantErr: ErrBadSignature},
		{name: "gitlab token", h: headers("X-Gitlab-Token", "s3cret"), want: GitLabToken},
		{name: "gitlab token wrong", h: headers("X-Gitlab-Token", "s3cret2"), want: GitLabToken, wantErr: ErrBadSignature},
		{name: "unsigned", h: headers("X-GitHub-Event", "push"), wantErr: ErrNoSignature, wantNone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, b := token, body
			if tt.token != nil {
				tok = tt.token
			}
			if tt.body != nil {
				b = tt.body
			}
			got, err := Verify(tt.h, b, tok, now)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("provider = %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := Verify(headers("X-Gitlab-Token", ""), body, nil, now); err == nil {
		t.Error("an empty token verified")
	}
}

func TestWanted(t *testing.T) {
	s := func(v string) *string { return &v }
	tests := []struct {
		name string
		ref  *gitopsv1alpha1.GitRef
		ev   event
		want bool
	}{
		{"default branch, branch push", nil, event{ref: "refs/heads/dev"}, true},
		{"default branch, tag push", nil, event{ref: "refs/tags/v1"}, false},
		{"branch match", &gitopsv1alpha1.GitRef{Branch: s("main")}, event{ref: "refs/heads/main"}, true},
		{"branch other", &gitopsv1alpha1.GitRef{Branch: s("main")}, event{ref: "refs/heads/mainline"}, false},
		{"tag match", &gitopsv1alpha1.GitRef{Tag: s("v1")}, event{ref: "refs/tags/v1"}, true},
		{"tag other", &gitopsv1alpha1.GitRef{Tag: s("v1")}, event{ref: "refs/tags/v2"}, false},
		{"semver any tag", &gitopsv1alpha1.GitRef{SemVer: s("^1")}, event{ref: "refs/tags/v1.4.0"}, true},
		{"semver branch", &gitopsv1alpha1.GitRef{SemVer: s("^1")}, event{ref: "refs/heads/main"}, false},
		{"pinned commit", &gitopsv1alpha1.GitRef{Commit: s("0123456789012345678901234567890123456789")}, event{ref: "refs/heads/main"}, false},
		{"unknown payload", &gitopsv1alpha1.GitRef{Branch: s("main")}, event{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := wanted(tt.ref, tt.ev)
			if got != tt.want {
				t.Errorf("wanted = %v (%s), want %v", got, why, tt.want)
			}
			if !got && why == "" {
				t.Error("an ignored delivery needs a reason")
			}
		})
	}
}

func TestParseEvent(t *testing.T) {
	h := http.Header{}
	h.Set("X-GitHub-Event", "create")
	h.Set("X-GitHub-Delivery", "abc")
	ev := parseEvent(h, []byte(`{"ref":"v1.2.0","ref_type":"tag"}`))
	if ev.ref != "refs/tags/v1.2.0" || ev.delivery != "abc" || ev.ping {
		t.Errorf("create event = %+v", ev)
	}
	h.Set("X-GitHub-Event", "ping")
	if ev := parseEvent(h, []byte(`{"zen":"x"}`)); !ev.ping {
		t.Error("ping not recognised")
	}
	gl := http.Header{}
	gl.Set("X-Gitlab-Event", "Push Hook")
	if ev := parseEvent(gl, []byte(`{"ref":"refs/heads/main"}`)); ev.ref != "refs/heads/main" {
		t.Errorf("gitlab push = %+v", ev)
	}
}

func TestRecentForgetsOldest(t *testing.T) {
	r := newRecent(2)
	for _, id := range []string{"a", "b"} {
		if !r.add(id) {
			t.Fatalf("%s not new", id)
		}
	}
	if r.add("a") {
		t.Error("a accepted twice")
	}
	r.add("c") // evicts a
	if !r.add("a") {
		t.Error("a still remembered after eviction")
	}
}
