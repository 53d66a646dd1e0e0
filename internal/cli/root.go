// Package cli implements the cairn command line.
package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// NewRootCommand returns the cairn command tree. Every call builds fresh flag
// and client state, so commands can be executed in-process repeatedly.
func NewRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	f := newFactory(streams)
	cmd := &cobra.Command{
		Use:   "cairn",
		Short: "cairn manages Cairn platform resources on a Kubernetes cluster",
		// Run reports errors itself; usage text would bury the actual message.
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w\nSee '%s -h' for help and examples", err, c.CommandPath())
	})

	f.AddFlags(cmd.PersistentFlags())
	if err := cmd.RegisterFlagCompletionFunc("namespace", completeNamespaces(f)); err != nil {
		panic(err) // The flag is registered just above; failure is a programming error.
	}

	cmd.AddCommand(
		newApplyCommand(f, streams),
		newDeviceCommand(f, streams),
		newEnvoyCommand(streams),
		newFirmwareCommand(f, streams),
		newFnCommand(f, streams),
		newGetCommand(f, streams),
		newGitRepoCommand(f, streams),
		newVersionCommand(f, streams),
	)
	return cmd
}

// Run executes the cairn command line with args and returns the process exit
// code. extra commands join the tree: cmd/cairn adds those whose libraries
// must stay out of this package (scancmd's syft and grype).
func Run(ctx context.Context, args []string, streams genericiooptions.IOStreams, extra ...*cobra.Command) int {
	cmd := NewRootCommand(streams)
	cmd.AddCommand(extra...)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		printError(streams.ErrOut, err)
		return 1
	}
	return 0
}

// printError writes err to w kubectl-style, one "error:" line per joined error
// so that every failed object of a multi-object command stays readable.
func printError(w io.Writer, err error) {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			fmt.Fprintf(w, "error: %v\n", e)
		}
		return
	}
	fmt.Fprintf(w, "error: %v\n", err)
}
