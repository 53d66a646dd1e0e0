package webhook

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
	"github.com/cairn-platform/cairn/api/scheme"
)

// TestRetryAfterFailedTriggerIsNotDuplicate: when annotating the GitRepo
// fails, the receiver answers 503 and the git server's retry of the same
// delivery id must trigger, not be dropped as a duplicate. (The end-to-end
// behaviour against a real API server is in test/integration.)
func TestRetryAfterFailedTriggerIsNotDuplicate(t *testing.T) {
	repo := &gitopsv1alpha1.GitRepo{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "gr"},
		Spec:       gitopsv1alpha1.GitRepoSpec{URL: "https://git.example.com/r.git", Webhook: &gitopsv1alpha1.GitWebhook{SecretRef: common.LocalObjectReference{Name: "hook"}}},
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "hook"}, Data: map[string][]byte{"token": []byte("t")}}
	failures := 1
	c := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(repo, secret).WithInterceptorFuncs(interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if failures > 0 {
				failures--
				return errors.New("etcd hiccup")
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
	}).Build()
	r, err := New(Options{Client: c, Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"ref":"refs/heads/main"}`)
	deliver := func() int {
		req := httptest.NewRequest(http.MethodPost, PathPrefix+"ns/gr", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "d-1")
		req.Header.Set("X-Hub-Signature-256", Sign([]byte("t"), body))
		rec := httptest.NewRecorder()
		r.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	if code := deliver(); code != http.StatusServiceUnavailable {
		t.Fatalf("first delivery = %d, want 503 while the patch fails", code)
	}
	if code := deliver(); code != http.StatusAccepted {
		t.Fatalf("retry = %d, want 202", code)
	}
	if code := deliver(); code != http.StatusOK {
		t.Errorf("redelivery after success = %d, want 200 (duplicate)", code)
	}

	// No signature header at all: refused before the body is read.
	req := httptest.NewRequest(http.MethodPost, PathPrefix+"ns/gr", bytes.NewReader(body))
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("unsigned = %d, want 401", rec.Code)
	}
}
