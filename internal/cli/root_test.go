package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-platform/cairn/internal/version"

	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

const testKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:1
contexts:
- name: with-namespace
  context: {cluster: local, user: dev, namespace: team-a}
- name: without-namespace
  context: {cluster: local, user: dev}
current-context: with-namespace
users:
- name: dev
  user: {token: not-used}
`

func TestNamespaceDefaulting(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "config")
	writeFile(t, kubeconfig, testKubeconfig)

	tests := []struct {
		name         string
		args         []string
		want         string
		wantExplicit bool
	}{
		{"current context's namespace", nil, "team-a", false},
		{"--context's namespace", []string{"--context", "without-namespace"}, "default", false},
		{"-n wins over the context", []string{"-n", "other"}, "other", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFactory(genericiooptions.NewTestIOStreamsDiscard())
			flags := pflag.NewFlagSet("test", pflag.ContinueOnError)
			f.AddFlags(flags)
			if err := flags.Parse(append([]string{"--kubeconfig", kubeconfig}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			got, explicit, err := f.namespace()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || explicit != tt.wantExplicit {
				t.Errorf("namespace() = (%q, %v), want (%q, %v)", got, explicit, tt.want, tt.wantExplicit)
			}
		})
	}
}

// TestInvalidInvocations checks flag and argument validation, which must fail
// before any server is contacted (the kubeconfig points at a closed port).
func TestInvalidInvocations(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "config")
	writeFile(t, kubeconfig, testKubeconfig)

	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"get"}, "you must specify the type of resource to get"},
		{[]string{"get", "wg", "-o", "xml"}, `invalid output format "xml"`},
		{[]string{"get", "wg", "w1", "-l", "a=b"}, "cannot be combined with a label selector"},
		{[]string{"get", "wg", "w1", "-A"}, "across all namespaces"},
		{[]string{"apply"}, "must specify one of -f or -k"},
		{[]string{"apply", "-f", "x.yaml", "-k", "dir"}, "only one of -f or -k can be specified"},
		{[]string{"apply", "-R", "-k", "dir"}, "it cannot be used with -k"},
		{[]string{"apply", "-k", filepath.Join(t.TempDir(), "missing")}, "building kustomization "},
		{[]string{"apply", "-f", "x.yaml", "--dry-run=client"}, `invalid --dry-run value "client"`},
		{[]string{"apply", "-f", filepath.Join(t.TempDir(), "missing.yaml")}, "missing.yaml: no such file"},
		{[]string{"version", "-o", "xml"}, `invalid output format "xml"`},
		{[]string{"get", "--no-such-flag"}, "See 'cairn get -h'"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			streams, _, out, errOut := genericiooptions.NewTestIOStreams()
			code := Run(context.Background(), append(tt.args, "--kubeconfig", kubeconfig), streams)
			if code == 0 {
				t.Fatalf("exit code 0, want non-zero; stdout: %s", out)
			}
			if !strings.HasPrefix(errOut.String(), "error: ") || !strings.Contains(errOut.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want an error containing %q", errOut, tt.wantErr)
			}
		})
	}
}

func TestVersionClientOnly(t *testing.T) {
	// Stand in for the values -ldflags -X would set.
	defer func(v, c, d string) { version.Version, version.Commit, version.Date = v, c, d }(version.Version, version.Commit, version.Date)
	version.Version, version.Commit, version.Date = "v1.2.3", "abc123", "2025-01-02T03:04:05Z"

	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	if code := Run(context.Background(), []string{"version", "--client"}, streams); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if got := out.String(); got != "Client Version: v1.2.3\n" {
		t.Errorf("output = %q", got)
	}

	out.Reset()
	if code := Run(context.Background(), []string{"version", "--client", "-o", "json"}, streams); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	var info versionInfo
	if err := json.Unmarshal(out.Bytes(), &info); err != nil {
		t.Fatalf("decoding %q: %v", out, err)
	}
	if c := info.ClientVersion; c.Version != "v1.2.3" || c.Commit != "abc123" || c.BuildDate != "2025-01-02T03:04:05Z" || info.ServerVersion != nil {
		t.Errorf("version info = %+v", info)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		streams, _, out, errOut := genericiooptions.NewTestIOStreams()
		if code := Run(context.Background(), []string{"completion", shell}, streams); code != 0 {
			t.Fatalf("completion %s: exit code %d: %s", shell, code, errOut)
		}
		if !strings.Contains(out.String(), "cairn") {
			t.Errorf("completion %s: script does not mention cairn", shell)
		}
	}
}

func TestPrintErrorSplitsJoinedErrors(t *testing.T) {
	var buf bytes.Buffer
	printError(&buf, errors.Join(errors.New("first"), errors.New("second")))
	if got, want := buf.String(), "error: first\nerror: second\n"; got != want {
		t.Errorf("printError() wrote %q, want %q", got, want)
	}
}
