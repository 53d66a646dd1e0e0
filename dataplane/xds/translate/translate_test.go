package translate

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-platform/cairn/internal/golden"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
)

// testOptions is the first document of an input file (kind: TranslateOptions).
type testOptions struct {
	Gateway      string   `json:"gateway"`
	ListenerPort uint32   `json:"listenerPort"`
	FunctionHost *Address `json:"functionHost"`
	Authz        *Address `json:"authz"`
	Tracing      *Tracing `json:"tracing"`
}

// loadInput reads a multi-document YAML file of Kubernetes objects.
func loadInput(t testing.TB, path string) *Input {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	in := &Input{}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var raw runtime.RawExtension
		if err := dec.Decode(&raw); err != nil {
			break
		}
		if len(raw.Raw) == 0 {
			continue
		}
		var meta struct{ Kind string }
		if err := json.Unmarshal(raw.Raw, &meta); err != nil {
			t.Fatal(err)
		}
		into := map[string]any{
			"TranslateOptions": &testOptions{},
			"Route":            &gatewayv1alpha1.Route{},
			"AuthPolicy":       &gatewayv1alpha1.AuthPolicy{},
			"Service":          &corev1.Service{},
			"EndpointSlice":    &discoveryv1.EndpointSlice{},
			"Function":         &serverlessv1alpha1.Function{},
			"ConfigMap":        &corev1.ConfigMap{},
		}[meta.Kind]
		if into == nil {
			t.Fatalf("%s: unexpected kind %q", path, meta.Kind)
		}
		if err := json.Unmarshal(raw.Raw, into); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		switch o := into.(type) {
		case *testOptions:
			in.Gateway = o.Gateway
			in.Options = Options{ListenerPort: o.ListenerPort, FunctionHost: o.FunctionHost, Authz: o.Authz, Tracing: o.Tracing}
		case *gatewayv1alpha1.Route:
			in.Routes = append(in.Routes, *o)
		case *gatewayv1alpha1.AuthPolicy:
			in.AuthPolicies = append(in.AuthPolicies, *o)
		case *corev1.Service:
			in.Services = append(in.Services, *o)
		case *discoveryv1.EndpointSlice:
			in.EndpointSlices = append(in.EndpointSlices, *o)
		case *serverlessv1alpha1.Function:
			in.Functions = append(in.Functions, *o)
		case *corev1.ConfigMap:
			in.ConfigMaps = append(in.ConfigMaps, *o)
		}
	}
	return in
}

// render turns a result into stable YAML: route outcomes, then resources.
func render(t testing.TB, res *Result) []byte {
	t.Helper()
	out := map[string]any{}
	routes := map[string]any{}
	for k, r := range res.Routes {
		entry := map[string]any{"generation": r.Generation}
		if r.Err != nil {
			entry["error"] = strings.Split(r.Err.Error(), "\n")
			entry["reason"] = r.Reason
		}
		if len(r.Excluded) > 0 {
			entry["excluded"] = r.Excluded
		}
		routes[k.String()] = entry
	}
	out["routes"] = routes
	for _, f := range []Flavor{FlavorEnvoy, FlavorGRPC} {
		r := res.Resources(f)
		out[string(f)] = map[string]any{
			"listeners":    messages(t, r.Listeners),
			"routeConfigs": messages(t, r.RouteConfigs),
			"clusters":     messages(t, r.Clusters),
			"endpoints":    messages(t, r.Endpoints),
		}
	}
	data, err := yaml.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func messages[M proto.Message](t testing.TB, ms []M) []any {
	out := []any{}
	for _, m := range ms {
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, path := range inputs {
		name := strings.TrimSuffix(filepath.Base(path), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			in := loadInput(t, path)
			res := Translate(in)
			got := render(t, res)

			// Every produced resource passes Envoy's validation (deep) and
			// every reference resolves, in both flavors.
			for _, f := range []Flavor{FlavorEnvoy, FlavorGRPC} {
				r := res.Resources(f)
				for _, m := range allMessages(r) {
					if err := ValidateDeep(m); err != nil {
						t.Errorf("%s resource fails validation: %v", f, err)
					}
				}
				if err := CheckReferences(r); err != nil {
					t.Errorf("%s references: %v", f, err)
				}
			}

			// Same input in another order: byte-identical output.
			shuffled := *in
			rng := rand.New(rand.NewSource(1))
			shuffled.Routes = append([]gatewayv1alpha1.Route(nil), in.Routes...)
			rng.Shuffle(len(shuffled.Routes), func(i, j int) { shuffled.Routes[i], shuffled.Routes[j] = shuffled.Routes[j], shuffled.Routes[i] })
			shuffled.Services = append([]corev1.Service(nil), in.Services...)
			rng.Shuffle(len(shuffled.Services), func(i, j int) {
				shuffled.Services[i], shuffled.Services[j] = shuffled.Services[j], shuffled.Services[i]
			})
			if again := render(t, Translate(&shuffled)); !bytes.Equal(got, again) {
				t.Error("output depends on input order")
			}

			golden.Assert(t, filepath.Join("testdata", name+".golden.yaml"), got)
		})
	}
}

func allMessages(r Resources) []proto.Message {
	var ms []proto.Message
	for _, m := range r.Listeners {
		ms = append(ms, m)
	}
	for _, m := range r.RouteConfigs {
		ms = append(ms, m)
	}
	for _, m := range r.Clusters {
		ms = append(ms, m)
	}
	for _, m := range r.Endpoints {
		ms = append(ms, m)
	}
	return ms
}
