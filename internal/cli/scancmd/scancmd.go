// Package scancmd implements `cairn sbom` and `cairn scan`. It is separate
// from internal/cli because it links syft and grype (~100 MB): only the
// cairn binary pays for them, not the CLI's other tests or the manager.
package scancmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairn-platform/cairn/dataplane/scan"
)

// registryFlags are the pull options both commands share.
type registryFlags struct {
	plainHTTP      bool
	caFile         string
	registryConfig string
}

func (f *registryFlags) add(fs *pflag.FlagSet) {
	fs.BoolVar(&f.plainHTTP, "plain-http", false, "Allow a registry over plain HTTP (localhost and 127.0.0.1 always are).")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM bundle of extra CAs to trust for the registry.")
	fs.StringVar(&f.registryConfig, "registry-config", "", "docker config.json with registry credentials; default anonymous (never read implicitly).")
}

func (f *registryFlags) options() (scan.RegistryOptions, error) {
	o := scan.RegistryOptions{PlainHTTP: f.plainHTTP, CAFile: f.caFile}
	if f.registryConfig != "" {
		b, err := os.ReadFile(f.registryConfig)
		if err != nil {
			return o, fmt.Errorf("--registry-config: %w", err)
		}
		o.DockerConfigJSON = b
	}
	return o, nil
}

// source interprets what the user named, syft-style: an explicit scheme
// ("registry:", "dir:", "oci-dir:", "oci-archive:", "docker-archive:"), else
// an existing directory (an OCI layout when it holds oci-layout), else an
// image reference. A file that is not an SBOM needs a scheme, so a typo is
// never pulled from a registry by surprise.
func source(arg string, reg scan.RegistryOptions) (scan.Source, error) {
	if scheme, rest, ok := strings.Cut(arg, ":"); ok {
		switch scheme {
		case "registry":
			return scan.Image(rest, reg), nil
		case "dir":
			return scan.Dir(rest), nil
		case "oci-dir":
			return scan.OCIDir(rest), nil
		case "oci-archive":
			return scan.OCIArchive(rest), nil
		case "docker-archive":
			return scan.DockerArchive(rest), nil
		}
	}
	info, err := os.Stat(arg)
	switch {
	case err == nil && info.IsDir():
		if _, err := os.Stat(filepath.Join(arg, "oci-layout")); err == nil {
			return scan.OCIDir(arg), nil
		}
		return scan.Dir(arg), nil
	case err == nil:
		return scan.Source{}, fmt.Errorf("%s is a file: name its kind (oci-archive:%s or docker-archive:%s), or pass an SBOM to `cairn scan`", arg, arg, arg)
	case !errors.Is(err, os.ErrNotExist):
		return scan.Source{}, err
	}
	return scan.Image(arg, reg), nil
}

// NewSBOMCommand returns `cairn sbom`.
func NewSBOMCommand() *cobra.Command {
	var reg registryFlags
	var format, outFile string
	cmd := &cobra.Command{
		Use:   "sbom IMAGE|DIR",
		Short: "Write the software bill of materials of an image or directory",
		Long: `Catalogue the packages of an image (pulled from its registry), an OCI layout or
archive, or a directory, and write an SBOM. Nothing but the named registry is contacted.`,
		Example: `  cairn sbom registry.example.com/shop/app:1.4 -o spdx-json > app.spdx.json
  cairn sbom ./rootfs --output-file rootfs.cdx.json
  cairn sbom oci-archive:app.tar`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := reg.options()
			if err != nil {
				return err
			}
			src, err := source(args[0], opts)
			if err != nil {
				return err
			}
			return writeSBOM(cmd.Context(), cmd, src, format, outFile)
		},
	}
	cmd.Flags().StringVarP(&format, "output", "o", scan.FormatCycloneDXJSON, "SBOM format: cyclonedx-json, spdx-json or syft-json.")
	cmd.Flags().StringVar(&outFile, "output-file", "", "Write to this file instead of standard output.")
	reg.add(cmd.Flags())
	return cmd
}

func writeSBOM(ctx context.Context, cmd *cobra.Command, src scan.Source, format, outFile string) error {
	switch format {
	case scan.FormatCycloneDXJSON, scan.FormatSPDXJSON, scan.FormatSyftJSON:
	default:
		return fmt.Errorf("unknown --output %q: want %s, %s or %s", format, scan.FormatCycloneDXJSON, scan.FormatSPDXJSON, scan.FormatSyftJSON)
	}
	sb, err := scan.GenerateSBOM(ctx, src)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if outFile != "" {
		f, err := os.Create(outFile)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		w = f
	}
	return scan.EncodeSBOM(w, sb, format)
}
