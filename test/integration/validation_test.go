package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Minimal valid objects; each invalid case breaks one thing in a copy.
const (
	validRoute = `
apiVersion: gateway.cairn.dev/v1alpha1
kind: Route
metadata: {name: r}
spec:
  gatewayRef: {name: public}
  rules:
  - backends:
    - service: {name: web, port: 80}`
	validAuthPolicy = `
apiVersion: gateway.cairn.dev/v1alpha1
kind: AuthPolicy
metadata: {name: ap}
spec:
  jwt:
    providers:
    - name: idp
      issuer: https://idp.example.com
      jwks: {remote: {uri: "https://idp.example.com/jwks"}}`
	validGitRepo = `
apiVersion: gitops.cairn.dev/v1alpha1
kind: GitRepo
metadata: {name: gr}
spec:
  url: https://git.example.com/org/repo.git`
	validEdgeDevice = `
apiVersion: edge.cairn.dev/v1alpha1
kind: EdgeDevice
metadata: {name: dev}
spec:
  hardware: {model: acme-gw2}`
	validFirmware = `
apiVersion: edge.cairn.dev/v1alpha1
kind: Firmware
metadata: {name: fw}
spec:
  version: 1.0.0
  compatibleModels: [acme-gw2]
  artifact:
    url: https://fw.example.com/image.bin
    sha256: bce8c8981f0af66980060d9352586dfc3e4f224e160dd58b068ae904fe0da35f
    size: 36
  signatures:
    trustedKeys: {name: keys}
    signatures:
    - keyID: k1
      value: I3UPfBH/sRMrOIpwuo8I39FiPW2oRSTyMCYM53Jh1wo6hoO+Cwq3z6w4XFp5Bsd/K4GAZkg0SmSdpvph3IKnCQ==
  metadata:
    repository: {name: firmware-repository}
    target: acme-gw2/1.0.0/image.bin
  rollout:
    waves: [{percent: 10}, {percent: 100}]`
	validFunction = `
apiVersion: serverless.cairn.dev/v1alpha1
kind: Function
metadata: {name: fn}
spec:
  module:
    configMap: {name: mod, key: module.wasm}`
)

type invalidCase struct {
	name   string
	base   string
	mutate func(spec map[string]any)
	want   string
}

// set assigns value at a dotted path inside spec; numeric segments index lists.
func set(path string, value any) func(map[string]any) {
	return func(spec map[string]any) {
		var cur any = spec
		parts := strings.Split(path, ".")
		for i, p := range parts {
			last := i == len(parts)-1
			switch c := cur.(type) {
			case map[string]any:
				if last {
					c[p] = value
					return
				}
				if _, ok := c[p]; !ok {
					c[p] = map[string]any{}
				}
				cur = c[p]
			case []any:
				var idx int
				fmt.Sscan(p, &idx)
				if last {
					c[idx] = value
					return
				}
				cur = c[idx]
			}
		}
	}
}

func del(path string) func(map[string]any) {
	return func(spec map[string]any) {
		parts := strings.Split(path, ".")
		m := spec
		for _, p := range parts[:len(parts)-1] {
			m = m[p].(map[string]any)
		}
		delete(m, parts[len(parts)-1])
	}
}

func all(fns ...func(map[string]any)) func(map[string]any) {
	return func(spec map[string]any) {
		for _, f := range fns {
			f(spec)
		}
	}
}

func backend(fields map[string]any) []any { return []any{fields} }

var invalidCases = []invalidCase{
	// Route
	{"route: all weights zero", validRoute, set("rules.0.backends", []any{
		map[string]any{"service": map[string]any{"name": "a", "port": 80}, "weight": 0},
		map[string]any{"service": map[string]any{"name": "b", "port": 80}, "weight": 0},
	}), "at least one backend must have a weight greater than 0"},
	{"route: backend with service and function", validRoute, set("rules.0.backends", backend(map[string]any{
		"service": map[string]any{"name": "a", "port": 80}, "function": map[string]any{"name": "f"},
	})), "a backend must set exactly one of service or function"},
	{"route: backend with neither", validRoute, set("rules.0.backends", backend(map[string]any{"weight": 1})),
		"a backend must set exactly one of service or function"},
	{"route: relative path", validRoute, set("rules.0.matches", []any{map[string]any{"path": map[string]any{"value": "api"}}}),
		"path must start with '/' unless type is RegularExpression"},
	{"route: query in path", validRoute, set("rules.0.matches", []any{map[string]any{"path": map[string]any{"type": "Exact", "value": "/a?b=1"}}}),
		"path must not contain '?' or '#'; use queryParams to match the query"},
	{"route: no rules", validRoute, set("rules", []any{}), "spec.rules: Invalid value: 0: spec.rules in body should have at least 1 items"},
	{"route: uppercase hostname", validRoute, set("hostnames", []any{"Shop.Example.com"}), `spec.hostnames[0]: Invalid value: "Shop.Example.com": spec.hostnames[0] in body should match`},
	{"route: port 0", validRoute, set("rules.0.backends.0.service.port", 0), "spec.rules[0].backends[0].service.port: Invalid value: 0: spec.rules[0].backends[0].service.port in body should be greater than or equal to 1"},
	{"route: unknown method", validRoute, set("rules.0.matches", []any{map[string]any{"method": "FETCH"}}), `Unsupported value: "FETCH": supported values: "GET", "HEAD", "POST"`},
	{"route: header regex without value", validRoute, set("rules.0.matches", []any{map[string]any{"headers": []any{map[string]any{"name": "x-v", "type": "RegularExpression"}}}}),
		"value is required unless type is Present"},
	{"route: duplicate rule names", validRoute, set("rules", []any{
		map[string]any{"name": "a", "backends": backend(map[string]any{"service": map[string]any{"name": "a", "port": 80}})},
		map[string]any{"name": "a", "backends": backend(map[string]any{"service": map[string]any{"name": "b", "port": 80}})},
	}), "rule names must be unique within a route"},
	{"route: backend timeout over request timeout", validRoute, set("rules.0.timeouts", map[string]any{"request": "1s", "backendRequest": "2s"}),
		"backendRequest must not be longer than request"},
	{"route: status codes without retry-on", validRoute, set("rules.0.retry", map[string]any{"retriableStatusCodes": []any{503}}),
		"retriableStatusCodes requires 'retriable-status-codes' in retryOn"},
	{"route: backoff base over max", validRoute, set("rules.0.retry", map[string]any{"backoff": map[string]any{"baseInterval": "1s", "maxInterval": "100ms"}}),
		"baseInterval must not be longer than maxInterval"},
	{"route: burst under rate", validRoute, set("rules.0.rateLimit", map[string]any{"requests": 100, "burst": 10}), "burst must be at least requests"},
	{"route: prose duration", validRoute, set("rules.0.timeouts", map[string]any{"request": "10 seconds"}), `spec.rules[0].timeouts.request: Invalid value: "10 seconds": spec.rules[0].timeouts.request in body should match`},
	{"route: gateway name not a DNS label", validRoute, set("gatewayRef.name", "Public_GW"), `spec.gatewayRef.name: Invalid value: "Public_GW"`},
	{"route: unqualified gRPC service", validRoute, set("rules.0.grpcTranscoding", map[string]any{"descriptorSet": map[string]any{"name": "d", "key": "k"}, "services": []any{"Greeter"}}),
		`spec.rules[0].grpcTranscoding.services[0]: Invalid value: "Greeter"`},
	{"route: CORS origin with path", validRoute, set("rules.0.cors", map[string]any{"allowOrigins": []any{"https://a.example.com/app"}}), `spec.rules[0].cors.allowOrigins[0]: Invalid value: "https://a.example.com/app"`},

	// AuthPolicy
	{"authpolicy: no mechanism", validAuthPolicy, del("jwt"), "set at least one of jwt or oauth2Introspection"},
	{"authpolicy: inline and remote JWKS", validAuthPolicy, set("jwt.providers.0.jwks.inline", `{"keys":[]}`), "jwks must set exactly one of inline or remote"},
	{"authpolicy: JWKS over http", validAuthPolicy, set("jwt.providers.0.jwks.remote.uri", "http://idp.example.com/jwks"), "uri must be an absolute https URL"},
	{"authpolicy: tenant header and claim", validAuthPolicy, set("tenantKey", map[string]any{"header": "x-tenant", "claim": "tenant"}), "tenantKey must set exactly one of header or claim"},
	{"authpolicy: tenant claim without jwt", validAuthPolicy, all(del("jwt"),
		set("oauth2Introspection", map[string]any{"endpoint": "https://as.example.com/introspect", "clientSecretRef": map[string]any{"name": "s"}}),
		set("tenantKey", map[string]any{"claim": "tenant"})), "tenantKey.claim requires jwt"},
	{"authpolicy: unknown failure mode", validAuthPolicy, set("failureMode", "Open"), `spec.failureMode: Unsupported value: "Open": supported values: "Deny", "Allow"`},
	{"authpolicy: introspection endpoint not a URL", validAuthPolicy, set("oauth2Introspection", map[string]any{"endpoint": "as.example.com", "clientSecretRef": map[string]any{"name": "s"}}),
		"endpoint must be an absolute http(s) URL"},
	{"authpolicy: breaker threshold 0", validAuthPolicy, set("breaker", map[string]any{"failureThreshold": 0}), "spec.breaker.failureThreshold in body should be greater than or equal to 1"},

	// GitRepo
	{"gitrepo: URL without scheme", validGitRepo, set("url", "git.example.com/org/repo"), `spec.url: Invalid value: "git.example.com/org/repo": spec.url in body should match`},
	{"gitrepo: branch and tag", validGitRepo, set("ref", map[string]any{"branch": "main", "tag": "v1.0.0"}), "ref must set at most one of branch, tag, semver or commit"},
	{"gitrepo: path escapes the repo", validGitRepo, set("path", "./apps/../../etc"), "path must stay inside the repository (no '..')"},
	{"gitrepo: interval too short", validGitRepo, set("interval", "1s"), "interval must be at least 10s"},
	{"gitrepo: short commit", validGitRepo, set("ref", map[string]any{"commit": "abc123"}), `spec.ref.commit: Invalid value: "abc123"`},
	{"gitrepo: unknown drift mode", validGitRepo, set("driftMode", "Ignore"), `spec.driftMode: Unsupported value: "Ignore": supported values: "Correct", "Detect"`},
	{"gitrepo: credentials for a local path", validGitRepo, all(set("url", "file:///srv/git/repo"), set("secretRef", map[string]any{"name": "creds"})),
		"secretRef cannot be used with a file:// URL"},
	{"gitrepo: unknown severity", validGitRepo, set("scanPolicy", map[string]any{"failOn": "Severe"}), `spec.scanPolicy.failOn: Unsupported value: "Severe"`},
	{"gitrepo: digests pinned without a scan", validGitRepo, set("pinImageDigests", true), "pinImageDigests needs scanPolicy: only scanned images have a digest to pin"},

	// EdgeDevice
	{"edgedevice: no model", validEdgeDevice, set("hardware", map[string]any{"arch": "arm64"}), "spec.hardware.model: Required value"},
	{"edgedevice: port filter on ICMP", validEdgeDevice, set("packetFilters", []any{map[string]any{"name": "p", "protocol": "ICMP", "port": 8}}), "port requires protocol TCP or UDP"},
	{"edgedevice: bad CIDR", validEdgeDevice, set("packetFilters", []any{map[string]any{"name": "c", "cidr": "10.0.0.0/33"}}), "cidr must be an IPv4 CIDR such as 10.0.0.0/8"},
	{"edgedevice: IPv6 CIDR", validEdgeDevice, set("packetFilters", []any{map[string]any{"name": "c", "cidr": "fd00::/8"}}), "the device filter matches IPv4 remote addresses"},
	{"edgedevice: unknown arch", validEdgeDevice, set("hardware.arch", "x86"), `spec.hardware.arch: Unsupported value: "x86": supported values: "amd64", "arm64", "arm", "riscv64"`},
	{"edgedevice: heartbeat too fast", validEdgeDevice, set("heartbeatInterval", "100ms"), "heartbeatInterval must be between 1s and 1h"},

	// Firmware
	{"firmware: version not semver", validFirmware, set("version", "1.4"), `spec.version: Invalid value: "1.4": spec.version in body should match`},
	{"firmware: last wave below 100", validFirmware, set("rollout.waves", []any{map[string]any{"percent": 10}, map[string]any{"percent": 50}}), "the last wave must reach 100 percent"},
	{"firmware: waves descending", validFirmware, set("rollout.waves", []any{map[string]any{"percent": 50}, map[string]any{"percent": 25}, map[string]any{"percent": 100}}), "wave percentages must be strictly ascending"},
	{"firmware: repeated wave", validFirmware, set("rollout.waves", []any{map[string]any{"percent": 50}, map[string]any{"percent": 50}, map[string]any{"percent": 100}}), "wave percentages must be strictly ascending"},
	{"firmware: threshold above signatures", validFirmware, set("signatures.threshold", 2), "signatures.threshold cannot exceed the number of signatures"},
	{"firmware: url and oci", validFirmware, set("artifact.oci", "registry.example.com/fw/gw2:1.0.0"), "artifact must set exactly one of url or oci"},
	{"firmware: device timeout too short", validFirmware, set("rollout.deviceTimeout", "30s"), "deviceTimeout must be at least 1m"},
	{"firmware: target escaping the repository", validFirmware, set("metadata.target", "acme-gw2/../../etc/passwd"), "target must not contain . or .. segments"},
	{"firmware: absolute target", validFirmware, set("metadata.target", "/etc/passwd"), "spec.metadata.target in body should match"},
	{"firmware: uppercase digest", validFirmware, set("artifact.sha256", strings.ToUpper("bce8c8981f0af66980060d9352586dfc3e4f224e160dd58b068ae904fe0da35f")), "spec.artifact.sha256 in body should match '^[a-f0-9]{64}$'"},
	{"firmware: maxUnavailable over 100%", validFirmware, set("rollout.maxUnavailable", "150%"), "maxUnavailable must be a positive number or a percentage between 1% and 100%"},
	{"firmware: truncated signature", validFirmware, set("signatures.signatures.0.value", "c2lnbmF0dXJl"), `spec.signatures.signatures[0].value: Invalid value: "c2lnbmF0dXJl"`},
	{"firmware: scan without an SBOM", validFirmware, set("scanPolicy", map[string]any{"failOn": "High"}), "scanPolicy needs spec.sbom: a firmware image is scanned through its signed SBOM"},

	// Function
	{"function: two module sources", validFunction, set("module.url", map[string]any{"url": "https://m.example.com/f.wasm", "sha256": strings.Repeat("a", 64)}),
		"module must set exactly one of configMap, secret, url or oci"},
	{"function: no module source", validFunction, set("module", map[string]any{}), "module must set exactly one of configMap, secret, url or oci"},
	{"function: URL without digest", validFunction, set("module", map[string]any{"url": map[string]any{"url": "https://m.example.com/f.wasm"}}), "spec.module.url.sha256: Required value"},
	{"function: memory over 4 GiB", validFunction, set("limits", map[string]any{"memoryPages": 70000}), "spec.limits.memoryPages in body should be less than or equal to 65536"},
	{"function: timeout too long", validFunction, set("limits", map[string]any{"timeout": "10m"}), "timeout must be between 1ms and 5m"},
	{"function: min over max instances", validFunction, set("scaling", map[string]any{"minInstances": 8, "maxInstances": 2}), "minInstances must not exceed maxInstances"},
	{"function: placed nowhere", validFunction, set("placement", map[string]any{"cluster": false}), "placement must select the cluster, edge devices, or both"},
	{"function: mqtt trigger in the cluster", validFunction, set("triggers", map[string]any{"mqtt": []any{"sensors/+/temp"}}), "mqtt triggers need placement.edgeSelector"},
	{"function: pooled command", validFunction, set("abi", "Command"), "abi Command needs isolation PerRequest"},
	{"function: bad env name", validFunction, set("env", []any{map[string]any{"name": "1BAD", "value": "x"}}), `spec.env[0].name: Invalid value: "1BAD"`},
	{"function: wildcard in the middle of a topic", validFunction, all(
		set("placement", map[string]any{"cluster": false, "edgeSelector": map[string]any{"matchLabels": map[string]any{"site": "lyon"}}}),
		set("triggers", map[string]any{"mqtt": []any{"sensors/#/temp"}})), "mqtt topics must be relative MQTT topic filters"},
}

func TestValidBasesAreAccepted(t *testing.T) {
	e := requireEnv(t)
	for _, base := range []string{validRoute, validAuthPolicy, validGitRepo, validEdgeDevice, validFirmware, validFunction} {
		obj := mustDecode(t, base)
		obj.SetNamespace("default")
		if err := e.Client.Create(context.Background(), obj, client.DryRunAll); err != nil {
			t.Errorf("valid %s rejected: %v", obj.GetKind(), err)
		}
	}
}

func TestInvalidObjectsAreRejectedWithClearMessages(t *testing.T) {
	e := requireEnv(t)
	if len(invalidCases) < 30 {
		t.Fatalf("only %d invalid cases; the table must cover at least 30", len(invalidCases))
	}
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			obj := mustDecode(t, tc.base)
			obj.SetNamespace("default")
			tc.mutate(obj.Object["spec"].(map[string]any))
			err := e.Client.Create(context.Background(), obj, client.DryRunAll)
			if err == nil {
				t.Fatalf("accepted; want rejection with %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not explain the problem:\n got: %v\nwant: …%s…", err, tc.want)
			}
		})
	}
}

func mustDecode(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	objs, err := decodeYAML([]byte(doc))
	if err != nil || len(objs) != 1 {
		t.Fatalf("decoding base object: %v", err)
	}
	return objs[0]
}
