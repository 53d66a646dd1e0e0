package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/cairn-platform/cairn/dataplane/xds/bootstrap"
)

func newEnvoyCommand(streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "envoy",
		Short: "Configure Envoy proxies as Cairn gateways",
	}
	cmd.AddCommand(newEnvoyBootstrapCommand(streams))
	return cmd
}

type envoyBootstrapOptions struct {
	streams genericiooptions.IOStreams
	opts    bootstrap.Options
	output  string
}

func newEnvoyBootstrapCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &envoyBootstrapOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "bootstrap --gateway NAME",
		Short: "Print the Envoy bootstrap that connects a proxy to Cairn's xDS server",
		Long: `Print the Envoy v3 bootstrap that connects a proxy to Cairn's xDS server.

The proxy's xDS node cluster is the gateway name: it receives the Routes whose
spec.gatewayRef.name equals --gateway. Its node id must be unique per proxy:
--node-id sets a default, and Envoy's --service-node overrides it at start-up
(in Kubernetes, pass the pod name from the Downward API).

Listeners and clusters come over ADS. The bootstrap itself holds the xDS
cluster, the admin interface on 127.0.0.1, and a health listener that exposes
only the admin's /ready and /stats/prometheus to the pod network.

No cluster is contacted.`,
		Example: `  # Bootstrap for the proxies of gateway "public", as a ConfigMap file
  cairn envoy bootstrap --gateway public > envoy.yaml
  envoy -c envoy.yaml --service-node "$POD_NAME"

  # Against a manager running on this machine (make dev)
  cairn envoy bootstrap --gateway public --xds-address 127.0.0.1:18000 --node-id local -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run()
		},
	}
	cmd.Flags().StringVar(&o.opts.Gateway, "gateway", "", "Gateway name, the xDS node cluster: the proxy serves Routes with this spec.gatewayRef.name. Required.")
	cmd.Flags().StringVar(&o.opts.XDSAddress, "xds-address", bootstrap.DefaultXDSAddress, "host:port of Cairn's xDS server.")
	cmd.Flags().StringVar(&o.opts.NodeID, "node-id", "", `xDS node id; must be unique per proxy. Envoy's --service-node overrides it. (default "<gateway>-envoy")`)
	cmd.Flags().Uint32Var(&o.opts.AdminPort, "admin-port", bootstrap.DefaultAdminPort, "Port of Envoy's admin interface, bound to 127.0.0.1.")
	cmd.Flags().Uint32Var(&o.opts.HealthPort, "health-port", bootstrap.DefaultHealthPort, "Port on 0.0.0.0 serving the admin's /ready and /stats/prometheus; must differ from the gateway listener's port (10080).")
	cmd.Flags().Int64Var(&o.opts.MaxConnections, "max-connections", bootstrap.DefaultMaxConnections, "Maximum downstream connections across all listeners.")
	cmd.Flags().StringVarP(&o.output, "output", "o", "yaml", "Output format. One of: (yaml, json).")
	if err := cmd.MarkFlagRequired("gateway"); err != nil {
		panic(err) // The flag is registered just above; failure is a programming error.
	}
	if err := cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]cobra.Completion{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp)); err != nil {
		panic(err)
	}
	return cmd
}

func (o *envoyBootstrapOptions) run() error {
	switch o.output {
	case "yaml", "json":
	default:
		return fmt.Errorf("invalid output format %q: must be one of yaml, json", o.output)
	}
	// Zero means "default" to the builder; on the command line it is a mistake.
	for name, v := range map[string]uint32{"--admin-port": o.opts.AdminPort, "--health-port": o.opts.HealthPort} {
		if v == 0 {
			return fmt.Errorf("invalid %s 0: must be from 1 to 65535", name)
		}
	}
	if o.opts.MaxConnections <= 0 {
		return fmt.Errorf("invalid --max-connections %d: must be positive", o.opts.MaxConnections)
	}
	b, err := bootstrap.Build(o.opts)
	if err != nil {
		return err
	}
	out, err := bootstrap.Marshal(b, o.output)
	if err != nil {
		return err
	}
	_, err = o.streams.Out.Write(out)
	return err
}
