package cli

import (
	"reflect"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
)

var gitRepos = schema.GroupVersionResource{Group: "gitops.cairn.dev", Version: "v1alpha1", Resource: "gitrepos"}

// offline runs cairn against an unreachable server: commands that pass
// prove they did not contact it.
func offline(t *testing.T, args ...string) result {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	code := Run(t.Context(), append([]string{"--server", "https://127.0.0.1:1", "-n", "team"}, args...), streams)
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

func TestGitRepoCreateFlagErrors(t *testing.T) {
	const url = "--url=https://git.example.com/r.git"
	for _, tc := range []struct {
		name string
		args []string
		want []string // one per "error:" line
	}{
		{"no name", []string{url}, []string{"accepts 1 arg(s), received 0"}},
		{"no url", []string{"r"}, []string{`required flag(s) "url" not set`}},
		{"empty url", []string{"r", "--url="}, []string{"--url must not be empty"}},
		{"two refs", []string{"r", url, "--branch", "main", "--tag", "v1"}, []string{"only one of --branch, --tag, --semver or --commit can be given, got --branch, --tag"}},
		{"three refs", []string{"r", url, "--semver", "^1", "--commit", strings.Repeat("a", 40), "--branch", "x"}, []string{"got --branch, --semver, --commit"}},
		{"empty ref", []string{"r", url, "--branch="}, []string{"--branch must not be empty"}},
		{"interval", []string{"r", url, "--interval", "5min"}, []string{`invalid --interval "5min": want a duration`}},
		{"timeout", []string{"r", url, "--timeout", "60"}, []string{`invalid --timeout "60": want a duration`}},
		{"drift mode", []string{"r", url, "--drift-mode", "fix"}, []string{`invalid --drift-mode "fix": must be "correct" or "detect"`}},
		{"fail on", []string{"r", url, "--fail-on", "severe"}, []string{`invalid --fail-on "severe": must be one of critical, high, medium, low or negligible`}},
		{"ignore without reason", []string{"r", url, "--ignore", "CVE-2024-45337"}, []string{`invalid --ignore "CVE-2024-45337": want "ID=REASON"`}},
		{"ignore empty reason", []string{"r", url, "--ignore", "CVE-2024-45337= "}, []string{`invalid --ignore "CVE-2024-45337= ": want "ID=REASON"`}},
		{"ignore bad id", []string{"r", url, "--ignore", "cve-2024-45337=x"}, []string{`invalid --ignore "cve-2024-45337=x": "cve-2024-45337" is not a vulnerability ID`}},
		{"ignore twice", []string{"r", url, "--ignore", "CVE-2024-45337=a", "--ignore", "CVE-2024-45337=b"}, []string{`invalid --ignore "CVE-2024-45337=b": CVE-2024-45337 is ignored twice`}},
		{"dry run", []string{"r", url, "--dry-run", "maybe"}, []string{`invalid --dry-run value "maybe"`}},
		{"output", []string{"r", url, "-o", "table"}, []string{`invalid --output "table"`}},
		{"all problems reported", []string{"r", url, "--tag", "v1", "--commit", "abc", "--interval", "1d", "--drift-mode", "x"}, []string{
			"only one of --branch, --tag, --semver or --commit can be given",
			`invalid --interval "1d"`,
			`invalid --drift-mode "x"`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := offline(t, append([]string{"gitrepo", "create"}, tc.args...)...)
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			if r.code == 0 || r.stdout != "" || len(lines) != len(tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d error line(s)", r.code, r.stdout, r.stderr, len(tc.want))
			}
			for i, want := range tc.want {
				if !strings.HasPrefix(lines[i], "error: ") || !strings.Contains(lines[i], want) {
					t.Errorf("stderr line %d = %q, want an error containing %q", i+1, lines[i], want)
				}
			}
		})
	}
}

// TestGitRepoCreateObject checks the GitRepo that flags produce, printed
// by --dry-run=client without contacting a server.
func TestGitRepoCreateObject(t *testing.T) {
	sha := "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name string
		args []string
		spec map[string]any
	}{
		{
			name: "only url",
			args: []string{"--url", "https://git.example.com/r.git"},
			spec: map[string]any{"url": "https://git.example.com/r.git"},
		},
		{
			name: "every flag",
			args: []string{
				"--url", "ssh://git@git.example.com/shop.git",
				"--semver", ">=1.0.0 <2.0.0",
				"--path", "./overlays/prod",
				"--interval", "1m30s",
				"--timeout", "2m",
				"--secret-ref", "shop-git",
				"--service-account", "shop-deployer",
				"--target-namespace", "shop",
				"--prune=false",
				"--suspend",
				"--drift-mode", "DETECT",
				"--webhook-secret", "shop-hook",
				"--fail-on", "hIgH",
				"--ignore", "CVE-2024-45337=ssh server, not used",
				"--ignore", " GHSA-v778-237x-gjrc = a=b ",
				"--pin-image-digests",
			},
			spec: map[string]any{
				"url":                "ssh://git@git.example.com/shop.git",
				"ref":                map[string]any{"semver": ">=1.0.0 <2.0.0"},
				"path":               "./overlays/prod",
				"interval":           "1m30s",
				"timeout":            "2m",
				"secretRef":          map[string]any{"name": "shop-git"},
				"serviceAccountName": "shop-deployer",
				"targetNamespace":    "shop",
				"prune":              false,
				"suspend":            true,
				"driftMode":          "Detect",
				"webhook":            map[string]any{"secretRef": map[string]any{"name": "shop-hook"}},
				"scanPolicy": map[string]any{
					"failOn": "High",
					"ignore": []any{
						map[string]any{"id": "CVE-2024-45337", "reason": "ssh server, not used"},
						map[string]any{"id": "GHSA-v778-237x-gjrc", "reason": "a=b"},
					},
				},
				"pinImageDigests": true,
			},
		},
		{
			name: "explicit defaults",
			args: []string{"--url", "git@github.com:org/repo.git", "--commit", sha, "--prune", "--suspend=false", "--drift-mode", "correct", "--fail-on", "negligible"},
			spec: map[string]any{
				"url":        "git@github.com:org/repo.git",
				"ref":        map[string]any{"commit": sha},
				"prune":      true,
				"suspend":    false,
				"driftMode":  "Correct",
				"scanPolicy": map[string]any{"failOn": "Negligible"},
			},
		},
		{
			name: "branch",
			args: []string{"--url", "file:///srv/git/r", "--branch", "release/1.x"},
			spec: map[string]any{"url": "file:///srv/git/r", "ref": map[string]any{"branch": "release/1.x"}},
		},
		{
			name: "tag",
			args: []string{"--url", "git://h/r", "--tag", "v1.2.3", "--ignore", "GO-2024-1234=fixed upstream"},
			spec: map[string]any{
				"url":        "git://h/r",
				"ref":        map[string]any{"tag": "v1.2.3"},
				"scanPolicy": map[string]any{"ignore": []any{map[string]any{"id": "GO-2024-1234", "reason": "fixed upstream"}}},
			},
		},
	} {
		for _, format := range []string{"yaml", "json"} {
			t.Run(tc.name+" "+format, func(t *testing.T) {
				args := append([]string{"gitrepo", "create", "shop", "--dry-run=client", "-o", format}, tc.args...)
				r := offline(t, args...)
				if r.code != 0 {
					t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
				}
				got := decodeObject(t, r.stdout)
				want := map[string]any{
					"apiVersion": "gitops.cairn.dev/v1alpha1",
					"kind":       "GitRepo",
					"metadata":   map[string]any{"name": "shop", "namespace": "team"},
					"spec":       tc.spec,
				}
				if !reflect.DeepEqual(got.Object, want) {
					t.Errorf("printed object\n got: %v\nwant: %v", got.Object, want)
				}
				// Every field must exist in the API types.
				var typed gitopsv1alpha1.GitRepo
				if err := yaml.UnmarshalStrict([]byte(r.stdout), &typed); err != nil {
					t.Errorf("output does not decode strictly into a GitRepo: %v", err)
				}
			})
		}
	}

	t.Run("status line", func(t *testing.T) {
		r := offline(t, "gitrepo", "create", "shop", "--url", "https://h/r", "--dry-run=client")
		if r.code != 0 || r.stdout != "gitrepo.gitops.cairn.dev/shop serverside-applied (dry run)\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
}

// installGitRepoCRD installs the real GitRepo CRD for the test only: it is
// in category cairn, which other tests list.
func (c *testCluster) installGitRepoCRD(t *testing.T) {
	c.installCRD(t, "gitops.cairn.dev_gitrepos.yaml", "gitrepos.gitops.cairn.dev")
}

func TestGitRepoCreateAppliesAndUpdates(t *testing.T) {
	c := cluster(t)
	c.installGitRepoCRD(t)
	ns := c.namespace(t)

	r := mustSucceed(t, c.cairn(t, "gitrepo", "create", "shop", "-n", ns,
		"--url", "https://git.example.com/shop.git", "--tag", "v1.4.0", "--path", "./deploy",
		"--interval", "1m", "--secret-ref", "shop-git", "--service-account", "deployer",
		"--target-namespace", "apps", "--prune=false", "--suspend", "--drift-mode", "detect",
		"--webhook-secret", "hook", "--fail-on", "critical", "--ignore", "CVE-2024-45337=not reachable"))
	assertLines(t, r.stdout, `^gitrepo.gitops.cairn.dev/shop serverside-applied$`)

	gr, err := c.get(t, gitRepos, ns, "shop")
	if err != nil {
		t.Fatal(err)
	}
	assertField(t, gr, "https://git.example.com/shop.git", "spec", "url")
	assertField(t, gr, "v1.4.0", "spec", "ref", "tag")
	assertField(t, gr, "./deploy", "spec", "path")
	assertField(t, gr, "1m", "spec", "interval")
	assertField(t, gr, "60s", "spec", "timeout") // API default
	assertField(t, gr, "shop-git", "spec", "secretRef", "name")
	assertField(t, gr, "deployer", "spec", "serviceAccountName")
	assertField(t, gr, "apps", "spec", "targetNamespace")
	assertField(t, gr, "Detect", "spec", "driftMode")
	assertField(t, gr, "hook", "spec", "webhook", "secretRef", "name")
	assertField(t, gr, "Critical", "spec", "scanPolicy", "failOn")
	assertBool(t, gr, false, "spec", "prune")
	assertBool(t, gr, true, "spec", "suspend")
	ignore, _, _ := unstructured.NestedSlice(gr.Object, "spec", "scanPolicy", "ignore")
	if want := []any{map[string]any{"id": "CVE-2024-45337", "reason": "not reachable"}}; !reflect.DeepEqual(ignore, want) {
		t.Errorf("spec.scanPolicy.ignore = %v, want %v", ignore, want)
	}

	// Again with fewer flags: the fields left out return to the API defaults,
	// and -o yaml prints the server's object.
	r = mustSucceed(t, c.cairn(t, "gitrepo", "create", "shop", "-n", ns, "--url", "https://git.example.com/shop.git", "--branch", "main", "-o", "yaml"))
	printed := decodeObject(t, r.stdout)
	if gr, err = c.get(t, gitRepos, ns, "shop"); err != nil {
		t.Fatal(err)
	}
	if printed.GetUID() != gr.GetUID() || printed.GetResourceVersion() != gr.GetResourceVersion() {
		t.Errorf("-o yaml printed uid %q resourceVersion %q, server has %q %q", printed.GetUID(), printed.GetResourceVersion(), gr.GetUID(), gr.GetResourceVersion())
	}
	wantSpec := map[string]any{
		"url":       "https://git.example.com/shop.git",
		"ref":       map[string]any{"branch": "main"},
		"path":      "./",
		"interval":  "5m",
		"timeout":   "60s",
		"prune":     true,
		"driftMode": "Correct",
	}
	if spec, _, _ := unstructured.NestedMap(gr.Object, "spec"); !reflect.DeepEqual(spec, wantSpec) {
		t.Errorf("spec after the update\n got: %v\nwant: %v", spec, wantSpec)
	}

	t.Run("server dry run", func(t *testing.T) {
		r := mustSucceed(t, c.cairn(t, "gitrepo", "create", "dry", "-n", ns, "--url", "https://h/r", "--dry-run=server"))
		assertLines(t, r.stdout, `^gitrepo.gitops.cairn.dev/dry serverside-applied \(server dry run\)$`)
		if _, err := c.get(t, gitRepos, ns, "dry"); !apierrors.IsNotFound(err) {
			t.Errorf("GitRepo after a server dry run: %v, want not found", err)
		}
	})
}

// TestGitRepoCreateServerRefusals checks that the API server's validation
// messages reach the user verbatim and that nothing is stored.
func TestGitRepoCreateServerRefusals(t *testing.T) {
	c := cluster(t)
	c.installGitRepoCRD(t)
	ns := c.namespace(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"secret with file url", []string{"--url", "file:///x", "--secret-ref", "s"}, "secretRef cannot be used with a file:// URL"},
		{"short interval", []string{"--url", "https://h/r", "--interval", "5s"}, "interval must be at least 10s"},
		{"bad branch", []string{"--url", "https://h/r", "--branch", "a..b"}, "branch is not a valid git ref name"},
		{"path outside", []string{"--url", "https://h/r", "--path", "../other"}, "path must stay inside the repository (no '..')"},
		{"bad url", []string{"--url", "not a url"}, `spec.url: Invalid value: "not a url"`},
		{"bad commit", []string{"--url", "https://h/r", "--commit", "ABC"}, `spec.ref.commit: Invalid value: "ABC"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, " ", "-")
			r := mustFail(t, c.cairn(t, append([]string{"gitrepo", "create", name, "-n", ns}, tc.args...)...))
			if !strings.HasPrefix(r.stderr, "error: applying gitrepo.gitops.cairn.dev/"+name+": ") || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr %q, want the server's message %q", r.stderr, tc.want)
			}
			if _, err := c.get(t, gitRepos, ns, name); !apierrors.IsNotFound(err) {
				t.Errorf("GitRepo stored despite the refusal: %v", err)
			}
		})
	}
}

func assertBool(t *testing.T, obj *unstructured.Unstructured, want bool, path ...string) {
	t.Helper()
	got, found, err := unstructured.NestedBool(obj.Object, path...)
	if err != nil || !found || got != want {
		t.Errorf("%s = %v (found %v, %v), want %v", strings.Join(path, "."), got, found, err, want)
	}
}
