package cli

import (
	"fmt"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// factory turns the kubectl-style connection flags (--kubeconfig, --context,
// -n, --server, ...) into API clients. The embedded ConfigFlags memoizes the
// REST config, discovery client and RESTMapper for the life of one command.
type factory struct {
	*genericclioptions.ConfigFlags
}

func newFactory(streams genericiooptions.IOStreams) *factory {
	// Route server warnings (deprecations, unknown fields) to the command's
	// stderr rather than client-go's default klog output.
	warnings := rest.NewWarningWriter(streams.ErrOut, rest.WarningWriterOptions{Deduplicate: true})
	flags := genericclioptions.NewConfigFlags(true).
		// Same as kubectl: clusters with many CRD groups need many discovery
		// requests, which the default 5 QPS would throttle for seconds.
		WithDiscoveryQPS(50).
		WithWarningPrinter(streams).
		WithWrapConfigFn(func(c *rest.Config) *rest.Config {
			c.WarningHandler = warnings
			return c
		})
	return &factory{ConfigFlags: flags}
}

// namespace returns the namespace to operate in: -n if given, else the
// current kubeconfig context's namespace, else "default". explicit reports
// whether it came from -n, which makes mismatching manifests an error.
func (f *factory) namespace() (ns string, explicit bool, err error) {
	ns, explicit, err = f.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", false, fmt.Errorf("determining namespace: %w", err)
	}
	return ns, explicit, nil
}

func (f *factory) dynamicClient() (dynamic.Interface, error) {
	cfg, err := f.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating dynamic client: %w", err)
	}
	return client, nil
}

// restClient returns a client that addresses any API group by absolute path,
// for requests the dynamic client cannot express (custom Accept headers).
func (f *factory) restClient() (*rest.RESTClient, error) {
	cfg, err := f.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	// Used only to decode Status objects in error responses; bodies are read raw.
	cfg.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	client, err := rest.UnversionedRESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating REST client: %w", err)
	}
	return client, nil
}
