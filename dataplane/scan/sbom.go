package scan

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/cataloging/pkgcataloging"
	"github.com/anchore/syft/syft/sbom"
	"github.com/anchore/syft/syft/source"
)

// GenerateSBOM catalogues src with syft, offline (see sbomConfig).
func GenerateSBOM(ctx context.Context, src Source) (*sbom.SBOM, error) {
	s, _, err := generateSBOM(ctx, src)
	return s, err
}

// generateSBOM also returns the image manifest digest for image sources.
func generateSBOM(ctx context.Context, src Source) (*sbom.SBOM, string, error) {
	src, err := src.validate()
	if err != nil {
		return nil, "", err
	}
	input, digest := src.Ref, ""
	cfg := syft.DefaultGetSourceConfig().WithSources(src.Kind.provider())
	if src.Kind == SourceImage {
		d, err := resolveImage(ctx, src.Ref, src.Registry)
		if err != nil {
			return nil, "", err
		}
		// Pull by digest so the SBOM describes exactly what we report,
		// even if the tag moves meanwhile.
		input, digest = d.String(), d.DigestStr()
		ro, err := src.Registry.stereoscope()
		if err != nil {
			return nil, "", err
		}
		cfg = cfg.WithRegistryOptions(ro).WithAlias(source.Alias{Name: src.Ref})
	}
	ss, err := syft.GetSource(ctx, input, cfg)
	if err != nil {
		return nil, "", fmt.Errorf("open %s source %q: %w", src.Kind, src.Ref, err)
	}
	lctx, err := licenseContext()
	if err != nil {
		_ = ss.Close()
		return nil, "", fmt.Errorf("catalogue %s %q: %w", src.Kind, src.Ref, err)
	}
	s, err := syft.CreateSBOM(withValuesFrom(ctx, lctx), ss, sbomConfig())
	if cerr := ss.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return nil, "", fmt.Errorf("catalogue %s %q: %w", src.Kind, src.Ref, err)
	}
	if s == nil {
		return nil, "", errors.New("syft returned no SBOM")
	}
	if digest == "" {
		if m, ok := s.Source.Metadata.(source.ImageMetadata); ok {
			digest = m.ManifestDigest
		}
	}
	return s, digest, nil
}

// sbomConfig is syft's default cataloguing with every feature that would
// reach the network (or read host caches that vary per machine) turned off:
// remote Go/npm/PyPI licence lookups, Maven parent-POM fetching, and Go
// module resolution through golang.org/x/tools/go/packages (which can run
// `go list` and download modules). It is built once (the binary
// classifiers alone are ~40 MB of allocation) and only read by syft.
var sbomConfig = sync.OnceValue(func() *syft.CreateSBOMConfig {
	pc := pkgcataloging.DefaultConfig()
	pc.Golang.SearchRemoteLicenses = false
	pc.Golang.SearchLocalModCacheLicenses = false
	pc.Golang.SearchLocalVendorLicenses = false
	pc.Golang.UsePackagesLib = false
	pc.Golang.Proxies = nil
	pc.JavaArchive.UseNetwork = false
	pc.JavaArchive.UseMavenLocalRepository = false
	pc.JavaArchive.ResolveTransitiveDependencies = false
	pc.JavaScript.SearchRemoteLicenses = false
	pc.Python.SearchRemoteLicenses = false
	return syft.DefaultCreateSBOMConfig().WithPackagesConfig(pc)
})

// licenseContext carries syft's licence scanner, built once per process:
// syft otherwise compiles licensecheck's licence matcher on every
// CreateSBOM call, which was ~75% of a small image's scan time and ~350 MB
// of allocation. The scanner is shared by syft's parallel catalogers, so it
// is safe for concurrent scans.
var licenseContext = sync.OnceValues(func() (context.Context, error) {
	return syft.SetContextLicenseScanner(context.Background(), sbomConfig().Licenses)
})

// valuesFrom is ctx (deadline, cancellation, values) that falls back to
// extra's values, so per-process state can ride on per-request contexts.
type valuesFrom struct {
	context.Context
	extra context.Context
}

func withValuesFrom(ctx, extra context.Context) context.Context {
	return valuesFrom{Context: ctx, extra: extra}
}

func (c valuesFrom) Value(key any) any {
	if v := c.Context.Value(key); v != nil {
		return v
	}
	return c.extra.Value(key)
}
