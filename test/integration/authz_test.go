package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/go-logr/logr/testr"
	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cairn-platform/cairn/controllers"
	"github.com/cairn-platform/cairn/dataplane/authz"
	xdsserver "github.com/cairn-platform/cairn/dataplane/xds/server"
	"github.com/cairn-platform/cairn/dataplane/xds/translate"
)

// TestAuthPoliciesReachTheAuthorizationService: an AuthPolicy and its client
// Secret in the API server become a working introspection policy, and
// rotating the Secret takes effect without a restart.
func TestAuthPoliciesReachTheAuthorizationService(t *testing.T) {
	requireEnv(t)
	var calls atomic.Int64
	var wantSecret atomic.Value
	wantSecret.Store("s3cret")
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		id, secret, ok := r.BasicAuth()
		if !ok || id != "gateway" || secret != wantSecret.Load().(string) {
			http.Error(w, "bad client", http.StatusUnauthorized)
			return
		}
		_ = r.ParseForm()
		active := strings.HasPrefix(r.PostForm.Get("token"), "good")
		_ = json.NewEncoder(w).Encode(map[string]any{"active": active, "sub": "alice", "scope": "orders:write"})
	}))
	defer idp.Close()

	authzSrv, err := authz.New(authz.WithLogger(testr.New(t)))
	if err != nil {
		t.Fatal(err)
	}
	runManager(t, controllers.Config{XDS: xdsserver.New(testLogger(t)), Authz: authzSrv})

	ns := newNamespace(t)
	createAll(t, ns, fmt.Sprintf(`
apiVersion: v1
kind: Secret
metadata: {name: idp-client}
stringData: {clientID: gateway, clientSecret: s3cret}
---
apiVersion: gateway.cairn.dev/v1alpha1
kind: AuthPolicy
metadata: {name: partners}
spec:
  oauth2Introspection: {endpoint: %q, clientSecretRef: {name: idp-client}, cacheTTL: 1s}
`, idp.URL+"/introspect"))

	check := func(token string) codes.Code {
		resp, err := authzSrv.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			ContextExtensions: map[string]string{translate.PolicyContextKey: ns + "/partners"},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Headers: map[string]string{"authorization": "Bearer " + token},
			}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return codes.Code(resp.GetStatus().GetCode())
	}
	eventually(t, 20*time.Second, func(context.Context) error {
		if c := check("good-token"); c != codes.OK {
			return fmt.Errorf("good token: %v", c)
		}
		return nil
	})
	if c := check("bad-token"); c != codes.Unauthenticated {
		t.Errorf("inactive token: %v, want Unauthenticated", c)
	}

	// Rotate the client secret on both sides: the new one is used.
	wantSecret.Store("rotated")
	patch := []byte(`{"stringData":{"clientSecret":"rotated"}}`)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idp-client"}}
	if err := env.Client.Patch(context.Background(), secret, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
	// Fresh tokens each try: a cached answer would prove nothing.
	try := 0
	eventually(t, 20*time.Second, func(context.Context) error {
		try++
		if c := check(fmt.Sprintf("good-%d", try)); c != codes.OK {
			return fmt.Errorf("after rotation: %v", c)
		}
		return nil
	})
	if calls.Load() < 3 {
		t.Errorf("introspection endpoint called %d times", calls.Load())
	}
}
