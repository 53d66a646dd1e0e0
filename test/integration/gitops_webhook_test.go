package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/gitops/webhook"
)

// TestGitRepoWebhook pushes to a git daemon and notifies the receiver the
// way GitHub and GitLab do. The GitRepo polls only every hour, so only an
// accepted delivery can bring the new commit in; refused deliveries must
// not even touch the GitRepo.
func TestGitRepoWebhook(t *testing.T) {
	requireEnv(t)
	startManager(t)
	ns := newNamespace(t)
	repoGit := newGitFixture(t)
	c1 := repoGit.commit(t, "c1", map[string]string{"deploy/a.yaml": configMap("a", "1")})
	const token = "webhook-s3cret"
	createAll(t, ns, fmt.Sprintf(`
apiVersion: v1
kind: Secret
metadata: {name: hook}
stringData: {token: %q}
---
apiVersion: gitops.cairn.dev/v1alpha1
kind: GitRepo
metadata: {name: gr}
spec: {url: %q, ref: {branch: main}, path: deploy, interval: 1h, webhook: {secretRef: {name: hook}}}`, token, repoGit.url))
	key := types.NamespacedName{Namespace: ns, Name: "gr"}
	waitGitRepoReady(t, key, metav1.ConditionTrue, "Applied", "main@sha1:"+c1)

	receiver, err := webhook.New(webhook.Options{Client: env.Client, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(receiver.Handler())
	t.Cleanup(srv.Close)
	hookURL := srv.URL + webhook.PathPrefix + ns + "/gr"

	post := func(t *testing.T, url string, headers map[string]string, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		msg, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(msg))
	}
	requested := func(t *testing.T) string {
		t.Helper()
		var repo gitopsv1alpha1.GitRepo
		if err := env.Client.Get(context.Background(), key, &repo); err != nil {
			t.Fatal(err)
		}
		return repo.Annotations[gitopsv1alpha1.ReconcileRequestAnnotation]
	}
	pushMain := `{"ref":"refs/heads/main","after":"x"}`
	github := func(body, delivery, tok string) map[string]string {
		return map[string]string{
			"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
			"X-Hub-Signature-256": webhook.Sign([]byte(tok), []byte(body)), "Content-Type": "application/json",
		}
	}

	c2 := repoGit.commit(t, "c2", map[string]string{"deploy/a.yaml": configMap("a", "2")})
	refused := []struct {
		name    string
		url     string
		headers map[string]string
		body    string
		code    int
	}{
		{"wrong token", hookURL, github(pushMain, "d-1", "guess"), pushMain, http.StatusUnauthorized},
		{"tampered body", hookURL, github(pushMain, "d-2", token), `{"ref":"refs/heads/main","after":"y"}`, http.StatusUnauthorized},
		{"unsigned", hookURL, map[string]string{"X-GitHub-Event": "push"}, pushMain, http.StatusUnauthorized},
		{"gitlab token wrong", hookURL, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"}, pushMain, http.StatusUnauthorized},
		{"unknown GitRepo", srv.URL + webhook.PathPrefix + ns + "/other", github(pushMain, "d-3", token), pushMain, http.StatusUnauthorized},
		{"ping", hookURL, map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": webhook.Sign([]byte(token), []byte(`{}`))}, `{}`, http.StatusOK},
		{"other branch", hookURL, github(`{"ref":"refs/heads/dev"}`, "d-4", token), `{"ref":"refs/heads/dev"}`, http.StatusOK},
	}
	for _, tt := range refused {
		t.Run("not triggered: "+tt.name, func(t *testing.T) {
			code, msg := post(t, tt.url, tt.headers, tt.body)
			if code != tt.code {
				t.Errorf("status = %d (%s), want %d", code, msg, tt.code)
			}
			if tt.code == http.StatusUnauthorized && strings.Contains(msg, "not found") {
				t.Errorf("a refusal tells whether the GitRepo exists: %s", msg)
			}
			if got := requested(t); got != "" {
				t.Errorf("reconcile requested (%q) by a delivery that must not trigger", got)
			}
		})
	}
	if repo := waitGitRepoReady(t, key, metav1.ConditionTrue, "Applied", ""); repo.Status.LastAppliedRevision != "main@sha1:"+c1 {
		t.Fatalf("revision %s applied without an accepted delivery", repo.Status.LastAppliedRevision)
	}

	t.Run("GitHub signature triggers a sync", func(t *testing.T) {
		code, msg := post(t, hookURL, github(pushMain, "d-5", token), pushMain)
		if code != http.StatusAccepted {
			t.Fatalf("status = %d (%s), want 202", code, msg)
		}
		waitGitRepoReady(t, key, metav1.ConditionTrue, "Applied", "main@sha1:"+c2)
		if cm, _ := getConfigMap(t, ns, "a"); cm == nil || cm.Data["value"] != "2" {
			t.Errorf("ConfigMap a = %+v, want value 2", cm)
		}
		before := requested(t)
		if code, msg := post(t, hookURL, github(pushMain, "d-5", token), pushMain); code != http.StatusOK || !strings.Contains(msg, "already") {
			t.Errorf("redelivery: status = %d (%s), want 200 already received", code, msg)
		}
		if requested(t) != before {
			t.Error("a redelivery requested another sync")
		}
	})

	t.Run("GitLab signing token triggers a sync", func(t *testing.T) {
		c3 := repoGit.commit(t, "c3", map[string]string{"deploy/a.yaml": configMap("a", "3")})
		now := time.Now().Unix()
		headers := map[string]string{
			"X-Gitlab-Event": "Push Hook", "Webhook-Id": "gl-1", "Webhook-Timestamp": strconv.FormatInt(now, 10),
			"Webhook-Signature": webhook.SignStandard([]byte(token), "gl-1", now, []byte(pushMain)),
		}
		if code, msg := post(t, hookURL, headers, pushMain); code != http.StatusAccepted {
			t.Fatalf("status = %d (%s), want 202", code, msg)
		}
		waitGitRepoReady(t, key, metav1.ConditionTrue, "Applied", "main@sha1:"+c3)
	})
}
