package cli

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
	apimachineryversion "k8s.io/apimachinery/pkg/version"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/cairn-platform/cairn/internal/version"
)

type clientVersion struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

type versionInfo struct {
	ClientVersion clientVersion             `json:"clientVersion"`
	ServerVersion *apimachineryversion.Info `json:"serverVersion,omitempty"`
}

type versionOptions struct {
	f          *factory
	streams    genericiooptions.IOStreams
	clientOnly bool
	output     string
}

func newVersionCommand(f *factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &versionOptions{f: f, streams: streams}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client and server version information",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return o.run()
		},
	}
	cmd.Flags().BoolVar(&o.clientOnly, "client", false, "If true, print the client version only and do not contact the server.")
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "Output format. One of: (json, yaml).")
	if err := cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]cobra.Completion{"json", "yaml"}, cobra.ShellCompDirectiveNoFileComp)); err != nil {
		panic(err) // The flag is registered just above; failure is a programming error.
	}
	return cmd
}

func (o *versionOptions) validate() error {
	switch o.output {
	case "", "json", "yaml":
		return nil
	default:
		return fmt.Errorf("invalid output format %q: must be one of json, yaml", o.output)
	}
}

// run prints what it knows even when the server is unreachable, then reports
// the failure so scripts still see a non-zero exit code.
func (o *versionOptions) run() error {
	info := versionInfo{ClientVersion: clientVersion{
		Version:   version.Version,
		Commit:    version.Commit,
		BuildDate: version.Date,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}}
	var serverErr error
	if !o.clientOnly {
		info.ServerVersion, serverErr = o.serverVersion()
	}
	if err := o.print(info); err != nil {
		return err
	}
	return serverErr
}

func (o *versionOptions) serverVersion() (*apimachineryversion.Info, error) {
	disc, err := o.f.ToDiscoveryClient()
	if err != nil {
		return nil, err
	}
	v, err := disc.ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("fetching server version: %w", err)
	}
	return v, nil
}

func (o *versionOptions) print(info versionInfo) error {
	var (
		out []byte
		err error
	)
	switch o.output {
	case "json":
		out, err = json.MarshalIndent(info, "", "  ")
		out = append(out, '\n')
	case "yaml":
		out, err = yaml.Marshal(info)
	default:
		out = fmt.Appendf(nil, "Client Version: %s\n", info.ClientVersion.Version)
		if info.ServerVersion != nil {
			out = fmt.Appendf(out, "Server Version: %s\n", info.ServerVersion.GitVersion)
		}
	}
	if err != nil {
		return fmt.Errorf("encoding version information: %w", err)
	}
	_, err = o.streams.Out.Write(out)
	return err
}
