// Package source reads a Function's WebAssembly module from where its spec
// points. The manager reads it to digest it and the function hosts to load
// it, so both see the same bytes and report the same problems. It does not
// import the wasm runtime, keeping wazero out of the manager.
package source

import (
	"context"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
	"github.com/cairn-platform/cairn/internal/kube"
)

// Read returns the module of a ConfigMap, Secret or URL source in namespace
// ns. A missing object or key, or a failed download, is a problem (a
// human-readable reason to report and wait on); err is only for failures to
// ask the API server. An OCI source yields neither module nor problem: it is
// resolved by ResolveOCI and fetched by PullOCI. httpClient may be nil.
func Read(ctx context.Context, c client.Reader, httpClient *http.Client, ns string, src serverlessv1alpha1.ModuleSource) (module []byte, problem string, err error) {
	key := func(name string) types.NamespacedName { return types.NamespacedName{Namespace: ns, Name: name} }
	switch {
	case src.ConfigMap != nil:
		b, problem, err := kube.ConfigMapKey(ctx, c, ns, src.ConfigMap.Name, src.ConfigMap.Key)
		if problem != "" {
			problem = "module " + problem
		}
		return b, problem, err
	case src.Secret != nil:
		var s corev1.Secret
		found, err := kube.GetIfExists(ctx, c, key(src.Secret.Name), &s)
		if err != nil || !found {
			return nil, fmt.Sprintf("module Secret %q not found", src.Secret.Name), err
		}
		if b, ok := s.Data[src.Secret.Key]; ok {
			return b, "", nil
		}
		return nil, fmt.Sprintf("Secret %q has no key %q", src.Secret.Name, src.Secret.Key), nil
	case src.URL != nil:
		module, err := download(ctx, httpClient, src.URL.URL)
		if err != nil {
			return nil, err.Error(), nil
		}
		return module, "", nil
	}
	return nil, "", nil
}
