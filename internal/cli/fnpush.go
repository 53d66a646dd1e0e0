package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/cairn-platform/cairn/dataplane/funchost/source"
)

func newFnPushCommand(streams genericiooptions.IOStreams) *cobra.Command {
	var insecure bool
	cmd := &cobra.Command{
		Use:   "push MODULE.wasm REGISTRY/REPOSITORY:TAG",
		Short: "Push a WebAssembly module to an OCI registry",
		Long: `Push a WebAssembly module to an OCI registry as a CNCF wasm artifact
(one layer of type application/vnd.wasm.content.layer.v1+wasm), ready for a
Function's spec.module.oci.ref. Credentials come from the docker config
(docker login); the artifact's digest reference is printed, to pin it.`,
		Example: `  cairn fn push examples/functions/hello-go/hello.wasm registry.example.com/fns/hello:v1`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			module, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("reading module: %w", err)
			}
			if !strings.HasPrefix(string(module), "\x00asm") {
				return fmt.Errorf("%s is not a WebAssembly binary module (no \\0asm magic number)", args[0])
			}
			if len(module) > source.MaxModuleBytes {
				return fmt.Errorf("%s is %d bytes; function hosts load modules of at most %d MiB", args[0], len(module), source.MaxModuleBytes>>20)
			}
			var opts []name.Option
			if insecure {
				opts = append(opts, name.Insecure)
			}
			ref, err := name.ParseReference(args[1], opts...)
			if err != nil {
				return fmt.Errorf("invalid reference %q: %w", args[1], err)
			}
			auth, err := authn.DefaultKeychain.Resolve(ref.Context())
			if err != nil {
				return fmt.Errorf("reading registry credentials: %w", err)
			}
			pushed, err := source.PushOCI(cmd.Context(), args[1], module, auth, insecure)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(streams.Out, "pushed %s (%d bytes)\n%s\n", args[1], len(module), pushed)
			return err
		},
	}
	cmd.Flags().BoolVar(&insecure, "insecure", false, "Allow a plain-HTTP registry.")
	return cmd
}
