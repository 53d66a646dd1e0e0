package integration

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/cairn-platform/cairn/controllers"
	"github.com/cairn-platform/cairn/dataplane/ota/tuf"
	xdsserver "github.com/cairn-platform/cairn/dataplane/xds/server"
	"github.com/cairn-platform/cairn/internal/signing"
)

// firmwareDoc is a Firmware for an image of the digest and size, signed
// with sig and listed in the TUF repository "repo" under target.
func firmwareDoc(digest, sig string, size int, target string) string {
	return fmt.Sprintf(`
apiVersion: edge.cairn.dev/v1alpha1
kind: Firmware
metadata: {name: fw}
spec:
  version: 2.0.0
  compatibleModels: [m1]
  artifact: {url: "https://fw.example.com/i.bin", sha256: %s, size: %d}
  signatures:
    trustedKeys: {name: keys}
    signatures: [{keyID: release, value: "%s"}]
  metadata: {repository: {name: repo}, target: %s}
  rollout: {waves: [{percent: 100}]}`, digest, size, sig, target)
}

// tufRepositoryDoc is a ConfigMap with a TUF repository signed at now
// (default expiries) listing each target with the digest, and the
// repository's 1.root.json.
func tufRepositoryDoc(t *testing.T, name string, now time.Time, targets map[string]int64, digest string) (string, []byte) {
	t.Helper()
	var s tuf.Signers
	var cfg tuf.RootConfig
	for _, role := range []*struct {
		keys *[]*tuf.PrivateKey
		rk   *tuf.RoleKeys
	}{{&s.Root, &cfg.Root}, {&s.Targets, &cfg.Targets}, {&s.Snapshot, &cfg.Snapshot}, {&s.Timestamp, &cfg.Timestamp}} {
		k, err := tuf.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		*role.keys = []*tuf.PrivateKey{k}
		*role.rk = tuf.RoleKeys{Keys: []tuf.Key{k.Public()}, Threshold: 1}
	}
	repo, err := tuf.OpenRepository(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Init(cfg, s, now); err != nil {
		t.Fatal(err)
	}
	for path, size := range targets {
		if err := repo.AddTarget(path, size, digest, tuf.Firmware{Version: "2.0.0", Models: []string{"m1"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := repo.Publish(s, now); err != nil {
		t.Fatal(err)
	}
	files, err := repo.Files()
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{}}
	for k, v := range files {
		cm.Data[k] = string(v)
	}
	doc, err := yaml.Marshal(cm)
	if err != nil {
		t.Fatal(err)
	}
	return "\n" + string(doc), files[tuf.RootVersionFile(1)]
}

// startManager runs every controller in-process until the test ends.
func startManager(t *testing.T) {
	t.Helper()
	requireEnv(t)
	runManager(t, controllers.Config{XDS: xdsserver.New(testLogger(t))})
}

func newNamespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "t-" + rand.String(8)}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// createAll creates YAML documents in namespace ns.
func createAll(t *testing.T, ns, docs string) {
	t.Helper()
	objs, err := decodeYAML([]byte(docs))
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objs {
		obj.SetNamespace(ns)
		if err := env.Client.Create(context.Background(), obj); err != nil {
			t.Fatalf("creating %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
}

// waitAccepted waits until obj's Accepted condition has the status and reason
// and its message contains msg, for the object's current generation.
func waitAccepted(t *testing.T, obj client.Object, conds *[]metav1.Condition, status metav1.ConditionStatus, reason, msg string) {
	t.Helper()
	eventually(t, 20*time.Second, func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		c := meta.FindStatusCondition(*conds, "Accepted")
		if c == nil || c.Status != status || c.Reason != reason || !strings.Contains(c.Message, msg) || c.ObservedGeneration != obj.GetGeneration() {
			return fmt.Errorf("%s Accepted = %+v; want %s/%s with message containing %q", client.ObjectKeyFromObject(obj), c, status, reason, msg)
		}
		return nil
	})
}

func TestControllersReportRuntimeProblems(t *testing.T) {
	requireEnv(t)
	startManager(t)

	pub, priv, _ := ed25519.GenerateKey(nil)
	_, otherPriv, _ := ed25519.GenerateKey(nil)
	digest := strings.Repeat("ab", 32)
	goodSig, _ := signing.Sign(priv, digest)
	forgedSig, _ := signing.Sign(otherPriv, digest)
	keys := fmt.Sprintf(`
apiVersion: v1
kind: ConfigMap
metadata: {name: keys}
data: {release: %s}`, base64.StdEncoding.EncodeToString(pub))
	firmware := func(sig string) string { return firmwareDoc(digest, sig, 10, "m1/2.0.0/image.bin") }
	// TUF repositories: a good one listing the image, and one whose
	// metadata expired a day ago.
	repo, _ := tufRepositoryDoc(t, "repo", time.Now(), map[string]int64{"m1/2.0.0/image.bin": 10}, digest)
	expired, _ := tufRepositoryDoc(t, "repo", time.Now().Add(-48*time.Hour), map[string]int64{"m1/2.0.0/image.bin": 10}, digest)
	// Keys that pin the root of yet another repository: "repo" is not
	// signed by it.
	_, otherRoot := tufRepositoryDoc(t, "other", time.Now(), map[string]int64{"m1/2.0.0/image.bin": 10}, digest)
	pinned := fmt.Sprintf(`
apiVersion: v1
kind: ConfigMap
metadata: {name: keys}
data:
  release: %s
  root.json: '%s'`, base64.StdEncoding.EncodeToString(pub), otherRoot)

	tests := []struct {
		name, docs     string
		obj            client.Object
		conds          func(client.Object) *[]metav1.Condition
		status         metav1.ConditionStatus
		reason, substr string
	}{
		{"route with a bad regular expression", `
apiVersion: gateway.cairn.dev/v1alpha1
kind: Route
metadata: {name: rt}
spec:
  gatewayRef: {name: gw}
  rules:
  - matches: [{path: {type: RegularExpression, value: "/(unclosed"}}]
    backends: [{service: {name: web, port: 80}}]`, route("rt"), routeConds, metav1.ConditionFalse, "Invalid", `rules[0].matches[0].path: invalid regular expression "/(unclosed"`},
		{"route to a missing port", `
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.cairn.dev/v1alpha1
kind: Route
metadata: {name: rt}
spec:
  gatewayRef: {name: gw}
  rules: [{backends: [{service: {name: web, port: 8080}}]}]`, route("rt"), routeConds, metav1.ConditionFalse, "BackendNotFound", `Service "web" has no port 8080`},
		{"route with a missing descriptor set", `
apiVersion: v1
kind: Service
metadata: {name: grpc}
spec: {ports: [{port: 9000}]}
---
apiVersion: gateway.cairn.dev/v1alpha1
kind: Route
metadata: {name: rt}
spec:
  gatewayRef: {name: gw}
  rules:
  - backends: [{service: {name: grpc, port: 9000}}]
    grpcTranscoding: {descriptorSet: {name: protos, key: api.pb}, services: [shop.v1.Orders]}`, route("rt"), routeConds, metav1.ConditionFalse, "DescriptorNotFound", `descriptor ConfigMap "protos" not found`},
		{"auth policy embedding a private key", `
apiVersion: gateway.cairn.dev/v1alpha1
kind: AuthPolicy
metadata: {name: ap}
spec:
  jwt:
    providers:
    - name: idp
      issuer: https://idp.example.com
      jwks: {inline: '{"keys":[{"kty":"OKP","crv":"Ed25519","x":"abc","d":"secret"}]}'}`, authPolicy("ap"), authPolicyConds, metav1.ConditionFalse, "InvalidJWKS", `contains private or symmetric key material ("d")`},
		{"auth policy with an incomplete client Secret", `
apiVersion: v1
kind: Secret
metadata: {name: client}
stringData: {clientID: shop}
---
apiVersion: gateway.cairn.dev/v1alpha1
kind: AuthPolicy
metadata: {name: ap}
spec:
  oauth2Introspection: {endpoint: "https://as.example.com/introspect", clientSecretRef: {name: client}}`, authPolicy("ap"), authPolicyConds, metav1.ConditionFalse, "SecretNotFound", `Secret "client" lacks key(s) clientSecret`},
		{"ssh git repo without known_hosts", `
apiVersion: v1
kind: Secret
metadata: {name: deploy-key}
stringData: {identity: "-----BEGIN OPENSSH PRIVATE KEY-----"}
---
apiVersion: gitops.cairn.dev/v1alpha1
kind: GitRepo
metadata: {name: gr}
spec: {url: "git@git.example.com:org/repo.git", secretRef: {name: deploy-key}}`, gitRepo("gr"), gitRepoConds, metav1.ConditionFalse, "SecretNotFound", `must hold "identity" and "known_hosts" for an ssh URL`},
		{"git repo with a bad semver range", `
apiVersion: gitops.cairn.dev/v1alpha1
kind: GitRepo
metadata: {name: gr}
spec: {url: "https://git.example.com/org/repo.git", ref: {semver: ">=one"}}`, gitRepo("gr"), gitRepoConds, metav1.ConditionFalse, "Invalid", `ref.semver ">=one" is not a semver range`},
		{"device with a bad twin property name", `
apiVersion: edge.cairn.dev/v1alpha1
kind: EdgeDevice
metadata: {name: dev}
spec:
  hardware: {model: m1}
  desired: {"bad key!": 1, good: 2}`, edgeDevice("dev"), edgeDeviceConds, metav1.ConditionFalse, "InvalidProperty", `property name "bad key!"`},
		{"device running a cluster-only function", `
apiVersion: v1
kind: ConfigMap
metadata: {name: mod}
binaryData: {m.wasm: AGFzbQEAAAA=}
---
apiVersion: serverless.cairn.dev/v1alpha1
kind: Function
metadata: {name: fn}
spec: {module: {configMap: {name: mod, key: m.wasm}}}
---
apiVersion: edge.cairn.dev/v1alpha1
kind: EdgeDevice
metadata: {name: dev}
spec:
  hardware: {model: m1}
  functions: [{name: fn}]`, edgeDevice("dev"), edgeDeviceConds, metav1.ConditionFalse, "FunctionNotFound", `Function "fn" is not placed on the edge`},
		{"firmware signed by an untrusted key", keys + "\n---" + firmware(forgedSig), firmwareObj(), firmwareConds, metav1.ConditionFalse, "SignatureInvalid", `0 of the required 1 signatures verify; signature by "release" does not match the digest`},
		{"firmware without its trusted keys", firmware(goodSig), firmwareObj(), firmwareConds, metav1.ConditionFalse, "TrustedKeysNotFound", `trusted keys ConfigMap "keys" not found`},
		{"firmware without its repository", keys + "\n---" + firmware(goodSig), firmwareObj(), firmwareConds, metav1.ConditionFalse, "RepositoryNotFound", `repository ConfigMap "repo" not found`},
		{"firmware with expired metadata", keys + "\n---" + expired + "\n---" + firmware(goodSig), firmwareObj(), firmwareConds, metav1.ConditionFalse, "MetadataExpired", "timestamp.json expired"},
		{"firmware missing from its repository", keys + "\n---" + repo + "\n---" + firmwareDoc(digest, goodSig, 10, "m1/9.9.9/image.bin"), firmwareObj(), firmwareConds, metav1.ConditionFalse, "TargetNotFound", "m1/9.9.9/image.bin"},
		{"firmware of another size than signed", keys + "\n---" + repo + "\n---" + firmwareDoc(digest, goodSig, 11, "m1/2.0.0/image.bin"), firmwareObj(), firmwareConds, metav1.ConditionFalse, "TargetMismatch", "target m1/2.0.0/image.bin is 11 bytes, targets.json says 10"},
		{"firmware whose repository the pinned root does not sign", pinned + "\n---" + repo + "\n---" + firmware(goodSig), firmwareObj(), firmwareConds, metav1.ConditionFalse, "MetadataInvalid", "signatures verify"},
		{"firmware correctly signed", keys + "\n---" + repo + "\n---" + firmware(goodSig), firmwareObj(), firmwareConds, metav1.ConditionTrue, "SignaturesVerified", "signed by release (threshold 1); target m1/2.0.0/image.bin verified in repository repo"},
		{"function whose module is not wasm", `
apiVersion: v1
kind: ConfigMap
metadata: {name: mod}
binaryData: {m.wasm: "aGVsbG8gd29ybGQ="}
---
apiVersion: serverless.cairn.dev/v1alpha1
kind: Function
metadata: {name: fn}
spec: {module: {configMap: {name: mod, key: m.wasm}}}`, function("fn"), functionConds, metav1.ConditionFalse, "NotWebAssembly", "the module (11 bytes) is not a WebAssembly binary"},
		{"function whose ConfigMap is missing", `
apiVersion: serverless.cairn.dev/v1alpha1
kind: Function
metadata: {name: fn}
spec: {module: {configMap: {name: mod, key: m.wasm}}}`, function("fn"), functionConds, metav1.ConditionFalse, "ModuleNotFound", `module ConfigMap "mod" not found`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			createAll(t, ns, tc.docs)
			tc.obj.SetNamespace(ns)
			waitAccepted(t, tc.obj, tc.conds(tc.obj), tc.status, tc.reason, tc.substr)
		})
	}
}

// A broken Route is reported on itself and leaves the others alone.
func TestBadRouteDoesNotAffectOtherRoutes(t *testing.T) {
	requireEnv(t)
	startManager(t)
	ns := newNamespace(t)
	createAll(t, ns, `
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.cairn.dev/v1alpha1
kind: Route
metadata: {name: good}
spec:
  gatewayRef: {name: gw}
  rules: [{matches: [{path: {value: /good}}], backends: [{service: {name: web, port: 80}}]}]
---
apiVersion: gateway.cairn.dev/v1alpha1
kind: Route
metadata: {name: bad}
spec:
  gatewayRef: {name: gw}
  rules: [{matches: [{path: {value: /bad}}], backends: [{service: {name: web, port: 80}}, {service: {name: missing, port: 80}}]}]`)
	good, bad := route("good"), route("bad")
	good.SetNamespace(ns)
	bad.SetNamespace(ns)
	waitAccepted(t, bad, routeConds(bad), metav1.ConditionFalse, "BackendNotFound", `rules[0].backends[1]: Service "missing" not found`)
	waitAccepted(t, good, routeConds(good), metav1.ConditionTrue, "Accepted", "")

	// Fixing the reference heals the bad route without touching the good one.
	goodVersion := good.GetResourceVersion()
	createAll(t, ns, `
apiVersion: v1
kind: Service
metadata: {name: missing}
spec: {ports: [{port: 80}]}`)
	waitAccepted(t, bad, routeConds(bad), metav1.ConditionTrue, "Accepted", "")
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(good), good); err != nil {
		t.Fatal(err)
	}
	if good.GetResourceVersion() != goodVersion {
		t.Errorf("the healthy route was rewritten (resourceVersion %s → %s); reconciles must be idempotent", goodVersion, good.GetResourceVersion())
	}
}

func TestOverlappingRouteIsRefused(t *testing.T) {
	requireEnv(t)
	startManager(t)
	ns := newNamespace(t)
	createAll(t, ns, `
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.cairn.dev/v1alpha1
kind: Route
metadata: {name: first}
spec:
  gatewayRef: {name: gw}
  hostnames: [shop.example.com]
  rules: [{matches: [{path: {value: /cart}}], backends: [{service: {name: web, port: 80}}]}]`)
	first := route("first")
	first.SetNamespace(ns)
	waitAccepted(t, first, routeConds(first), metav1.ConditionTrue, "Accepted", "")
	createAll(t, ns, `
apiVersion: gateway.cairn.dev/v1alpha1
kind: Route
metadata: {name: second}
spec:
  gatewayRef: {name: gw}
  hostnames: [shop.example.com]
  rules: [{matches: [{path: {value: /cart}}], backends: [{service: {name: web, port: 80}}]}]`)
	second := route("second")
	second.SetNamespace(ns)
	waitAccepted(t, second, routeConds(second), metav1.ConditionFalse, "Conflicted",
		fmt.Sprintf(`rules[0].matches[0]: identical match for host "shop.example.com" is already served by Route %s/first, which is older`, ns))
	waitAccepted(t, first, routeConds(first), metav1.ConditionTrue, "Accepted", "")
}

func TestUnreachableJWKSDegradesThePolicy(t *testing.T) {
	requireEnv(t)
	startManager(t)
	ns := newNamespace(t)
	// Port 1 on loopback: nothing listens, the fetch is refused at once.
	createAll(t, ns, `
apiVersion: gateway.cairn.dev/v1alpha1
kind: AuthPolicy
metadata: {name: idp}
spec:
  jwt:
    providers:
    - name: down
      issuer: https://idp.example.com
      jwks: {remote: {uri: "https://127.0.0.1:1/jwks"}}`)
	p := authPolicy("idp")
	p.SetNamespace(ns)
	waitAccepted(t, p, authPolicyConds(p), metav1.ConditionTrue, "Accepted", "")
	eventually(t, 20*time.Second, func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		c := meta.FindStatusCondition(*authPolicyConds(p), "Degraded")
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != "JWKSUnreachable" || !strings.Contains(c.Message, `jwt provider "down": fetching https://127.0.0.1:1/jwks`) {
			return fmt.Errorf("Degraded = %+v", c)
		}
		return nil
	})
}
