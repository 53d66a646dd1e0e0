package scan

import (
	"fmt"
	"path/filepath"
)

// SourceKind says how a Source's Ref is interpreted.
type SourceKind int

// Source kinds. Each maps to exactly one syft source provider so that syft
// never falls back to probing a Docker daemon, Podman or a remote registry
// the caller did not name.
const (
	// SourceImage pulls Ref (e.g. "127.0.0.1:5000/app:1.0") from its registry.
	SourceImage SourceKind = iota + 1
	// SourceOCIDir reads an OCI image layout directory.
	SourceOCIDir
	// SourceOCIArchive reads a tarball of an OCI image layout.
	SourceOCIArchive
	// SourceDockerArchive reads a `docker save` tarball.
	SourceDockerArchive
	// SourceDir catalogues a plain directory tree.
	SourceDir
)

func (k SourceKind) String() string {
	if p := k.provider(); p != "" {
		return p
	}
	return fmt.Sprintf("SourceKind(%d)", int(k))
}

// provider is the syft source provider name for the kind. Naming the
// provider (not a tag such as "dir" or "registry", which select several)
// guarantees exactly one way of reading the input.
func (k SourceKind) provider() string {
	switch k {
	case SourceImage:
		return "oci-registry"
	case SourceOCIDir:
		return "oci-dir"
	case SourceOCIArchive:
		return "oci-archive"
	case SourceDockerArchive:
		return "docker-archive"
	case SourceDir:
		return "local-directory"
	}
	return ""
}

// Source is something to catalogue.
type Source struct {
	Kind SourceKind
	// Ref is an image reference for SourceImage, a path otherwise.
	Ref string
	// Registry configures pulls for SourceImage; ignored otherwise.
	Registry RegistryOptions
}

// Image is a registry image source.
func Image(ref string, opts RegistryOptions) Source {
	return Source{Kind: SourceImage, Ref: ref, Registry: opts}
}

// OCIDir is an OCI image layout directory source.
func OCIDir(path string) Source { return Source{Kind: SourceOCIDir, Ref: path} }

// OCIArchive is an OCI layout tarball source.
func OCIArchive(path string) Source { return Source{Kind: SourceOCIArchive, Ref: path} }

// DockerArchive is a `docker save` tarball source.
func DockerArchive(path string) Source { return Source{Kind: SourceDockerArchive, Ref: path} }

// Dir is a directory source.
func Dir(path string) Source { return Source{Kind: SourceDir, Ref: path} }

func (s Source) validate() (Source, error) {
	if s.Ref == "" {
		return s, fmt.Errorf("scan source: empty reference")
	}
	switch s.Kind {
	case SourceImage:
	case SourceOCIDir, SourceOCIArchive, SourceDockerArchive, SourceDir:
		abs, err := filepath.Abs(s.Ref)
		if err != nil {
			return s, fmt.Errorf("scan source %q: %w", s.Ref, err)
		}
		s.Ref = abs
	default:
		return s, fmt.Errorf("scan source %q: unknown kind %v", s.Ref, s.Kind)
	}
	return s, nil
}
