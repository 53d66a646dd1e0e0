package scantest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Fixture defaults: the planted DB (DefaultVulns) is written against these.
const (
	DefaultAPKPackage      = "musl"
	VulnerableAPKVersion   = "1.2.3-r0"
	FixedAPKVersion        = "1.2.5-r0"
	DefaultAlpineVersion   = "3.20.3"
	DefaultGoModule        = "github.com/google/uuid"
	DefaultGoModuleVersion = "v1.6.0"
	// GoBinaryPath is where the Go binary sits in built images.
	GoBinaryPath = "/usr/local/bin/cairn-fixture"
)

// ImageOptions describes a fixture image. Zero fields take the defaults.
type ImageOptions struct {
	// APKPackage and APKVersion are written to /lib/apk/db/installed.
	APKPackage, APKVersion string
	// AlpineVersion goes into /etc/os-release (VERSION_ID).
	AlpineVersion string
	// GoModule@GoModuleVersion is linked into a Go binary at GoBinaryPath,
	// so it appears in the binary's build info. NoGoBinary leaves it out.
	GoModule, GoModuleVersion string
	NoGoBinary                bool
}

func (o ImageOptions) withDefaults() ImageOptions {
	if o.APKPackage == "" {
		o.APKPackage = DefaultAPKPackage
	}
	if o.APKVersion == "" {
		o.APKVersion = VulnerableAPKVersion
	}
	if o.AlpineVersion == "" {
		o.AlpineVersion = DefaultAlpineVersion
	}
	if o.GoModule == "" {
		o.GoModule = DefaultGoModule
	}
	if o.GoModuleVersion == "" {
		o.GoModuleVersion = DefaultGoModuleVersion
	}
	return o
}

// File is one regular file in a fixture filesystem.
type File struct {
	Path string
	Mode int64
	Data []byte
}

// Files returns the fixture filesystem an image built with o contains, for
// writing into a directory (directory scans) or a layer.
func Files(t testing.TB, o ImageOptions) []File {
	t.Helper()
	o = o.withDefaults()
	fs := []File{
		{Path: "etc/os-release", Mode: 0o644, Data: osRelease(o.AlpineVersion)},
		{Path: "lib/apk/db/installed", Mode: 0o644, Data: apkInstalled(o.APKPackage, o.APKVersion)},
	}
	if !o.NoGoBinary {
		fs = append(fs, File{Path: GoBinaryPath[1:], Mode: 0o755, Data: GoBinary(t, o.GoModule, o.GoModuleVersion)})
	}
	return fs
}

// BuildImage builds a linux image for the host architecture: one layer with
// the Alpine os-release and apk database, one with the Go binary.
func BuildImage(t testing.TB, o ImageOptions) v1.Image {
	t.Helper()
	files := Files(t, o)
	var layers []v1.Layer
	for _, group := range [][]File{files[:2], files[2:]} {
		if len(group) == 0 {
			continue
		}
		l, err := layer(group)
		if err != nil {
			t.Fatalf("scantest: build layer: %v", err)
		}
		layers = append(layers, l)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatalf("scantest: append layers: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("scantest: config: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cf.Config.Entrypoint = []string{GoBinaryPath}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatalf("scantest: set config: %v", err)
	}
	return img
}

// layer tars files (with their parent directories) into an uncompressed
// layer; tarball compresses it with gzip on demand.
func layer(files []File) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{}
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range files {
		for _, d := range parents(f.Path) {
			if seen[d] {
				continue
			}
			seen[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime}); err != nil {
				return nil, err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Path, Mode: f.Mode, Size: int64(len(f.Data)), ModTime: mtime}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
}

func parents(p string) []string {
	var out []string
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			out = append(out, p[:i])
		}
	}
	return out
}

func osRelease(version string) []byte {
	// PRETTY_NAME carries major.minor only, as on real Alpine.
	mm := strings.Join(strings.SplitN(version, ".", 3)[:min(2, strings.Count(version, ".")+1)], ".")
	return fmt.Appendf(nil, `NAME="Alpine Linux"
ID=alpine
VERSION_ID=%s
PRETTY_NAME="Alpine Linux v%s"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
`, version, mm)
}

// apkInstalled is an apk installed database with one package, in the
// format apk-tools writes (one "K:value" line per field, blank line after
// each package).
func apkInstalled(name, version string) []byte {
	return fmt.Appendf(nil, `C:Q1cairnfixturechecksum0000000000000=
P:%[1]s
V:%[2]s
A:%[3]s
S:383152
I:622592
T:the %[1]s fixture package
U:https://example.invalid/%[1]s
L:MIT
o:%[1]s
m:Cairn Fixtures <fixtures@example.invalid>
t:1700000000
c:0000000000000000000000000000000000000000
F:lib
R:ld-%[1]s-fixture.so.1
a:0:0:755

`, name, version, apkArch())
}

func apkArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}
