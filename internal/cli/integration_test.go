package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// The integration tests run cairn in-process against a real kube-apiserver
// and etcd started by envtest, shared by all tests; each test works in its
// own namespace.

var (
	widgets = schema.GroupVersionResource{Group: "test.cairn.dev", Version: "v1", Resource: "widgets"}
	gadgets = schema.GroupVersionResource{Group: "test.cairn.dev", Version: "v1", Resource: "gadgets"}
)

var shared struct {
	once    sync.Once
	env     *envtest.Environment
	dir     string // holds the kubeconfig
	cluster *testCluster
	err     error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.env != nil {
		if err := shared.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping envtest: %v\n", err)
			code = 1
		}
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

type testCluster struct {
	config     *rest.Config
	kubeconfig string // path to an admin kubeconfig without a context namespace
	dynamic    dynamic.Interface
	kube       kubernetes.Interface
}

// cluster returns the shared test cluster, starting it on first use.
func cluster(t *testing.T) *testCluster {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip(`KUBEBUILDER_ASSETS is not set, so no kube-apiserver and etcd binaries are available; ` +
			`run: export KUBEBUILDER_ASSETS="$(hack/setup-envtest-from-source.sh)"`)
	}
	shared.once.Do(func() { shared.cluster, shared.err = startCluster() })
	if shared.err != nil {
		t.Fatalf("starting test cluster: %v", shared.err)
	}
	return shared.cluster
}

func startCluster() (*testCluster, error) {
	shared.env = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("testdata", "crds")},
		ErrorIfCRDPathMissing: true,
	}
	if _, err := shared.env.Start(); err != nil {
		return nil, err
	}
	user, err := shared.env.AddUser(envtest.User{Name: "cairn-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("adding user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, fmt.Errorf("building kubeconfig: %w", err)
	}
	if shared.dir, err = os.MkdirTemp("", "cairn-cli-test-"); err != nil {
		return nil, err
	}
	c := &testCluster{config: user.Config(), kubeconfig: filepath.Join(shared.dir, "kubeconfig")}
	if err := os.WriteFile(c.kubeconfig, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	if c.dynamic, err = dynamic.NewForConfig(c.config); err != nil {
		return nil, err
	}
	if c.kube, err = kubernetes.NewForConfig(c.config); err != nil {
		return nil, err
	}
	return c, nil
}

// namespace creates a namespace named after the test.
func (c *testCluster) namespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	name = strings.Trim(name[:min(len(name), 63)], "-")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.kube.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return name
}

// kubeconfigWithNamespace writes a kubeconfig whose current context defaults
// to namespace.
func (c *testCluster) kubeconfigWithNamespace(t *testing.T, namespace string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Contexts[cfg.CurrentContext].Namespace = namespace
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

type result struct {
	stdout, stderr string
	code           int
}

// cairn runs the command line in-process, as the real binary would, with a
// fresh discovery cache unless args set --cache-dir.
func (c *testCluster) cairn(t *testing.T, args ...string) result {
	t.Helper()
	return c.cairnWithInput(t, "", args...)
}

func (c *testCluster) cairnWithInput(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	streams, in, out, errOut := genericiooptions.NewTestIOStreams()
	in.WriteString(stdin)
	// Flags given later win, so args can override these defaults.
	args = append([]string{"--kubeconfig", c.kubeconfig, "--cache-dir", t.TempDir()}, args...)
	code := Run(t.Context(), args, streams)
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

func mustSucceed(t *testing.T, r result) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	return r
}

func mustFail(t *testing.T, r result) result {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("exit code 0, want failure\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	return r
}

func writeManifest(t *testing.T, name string, docs ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	writeFile(t, path, strings.Join(docs, "---\n"))
	return path
}

func widget(name, color string, size int, extra string) string {
	return fmt.Sprintf(`apiVersion: test.cairn.dev/v1
kind: Widget
metadata:
  name: %s
  labels:
    color: %s
spec:
  color: %s
  size: %d
%s`, name, color, color, size, extra)
}

func gadget(name, model string) string {
	return fmt.Sprintf("apiVersion: test.cairn.dev/v1\nkind: Gadget\nmetadata:\n  name: %s\nspec:\n  model: %s\n", name, model)
}

func (c *testCluster) get(t *testing.T, gvr schema.GroupVersionResource, namespace, name string) (*unstructured.Unstructured, error) {
	t.Helper()
	return c.dynamic.Resource(gvr).Namespace(namespace).Get(t.Context(), name, metav1.GetOptions{})
}

func TestApplyCreatesObjectsAndIsIdempotent(t *testing.T) {
	c := cluster(t)
	ns := c.namespace(t)
	gadgetName := ns + "-gadget"
	file := writeManifest(t, "objects.yaml", widget("w1", "red", 3, ""), gadget(gadgetName, "mk2"))

	want := fmt.Sprintf("widget.test.cairn.dev/w1 serverside-applied\ngadget.test.cairn.dev/%s serverside-applied\n", gadgetName)
	if r := mustSucceed(t, c.cairn(t, "apply", "-n", ns, "-f", file)); r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}

	w1, err := c.get(t, widgets, ns, "w1")
	if err != nil {
		t.Fatalf("widget was not created in namespace %s: %v", ns, err)
	}
	if color, _, _ := unstructured.NestedString(w1.Object, "spec", "color"); color != "red" {
		t.Errorf("spec.color = %q, want red", color)
	}
	managers := w1.GetManagedFields()
	if len(managers) != 1 || managers[0].Manager != "cairn" || managers[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Errorf("managedFields = %+v, want a single Apply entry by manager cairn", managers)
	}
	if _, err := c.get(t, gadgets, "", gadgetName); err != nil {
		t.Errorf("cluster-scoped gadget was not created: %v", err)
	}

	// Applying unchanged configuration again must not modify anything.
	if r := mustSucceed(t, c.cairn(t, "apply", "-n", ns, "-f", file)); r.stdout != want {
		t.Errorf("second apply: stdout = %q, want %q", r.stdout, want)
	}
	again, err := c.get(t, widgets, ns, "w1")
	if err != nil {
		t.Fatal(err)
	}
	if again.GetResourceVersion() != w1.GetResourceVersion() {
		t.Errorf("second apply changed resourceVersion from %s to %s", w1.GetResourceVersion(), again.GetResourceVersion())
	}
}

func TestApplyServerDryRunDoesNotPersist(t *testing.T) {
	c := cluster(t)
	ns := c.namespace(t)

	file := writeManifest(t, "widget.yaml", widget("dry", "green", 1, ""))
	r := mustSucceed(t, c.cairn(t, "apply", "-n", ns, "--dry-run=server", "-f", file))
	if want := "widget.test.cairn.dev/dry serverside-applied (server dry run)\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	if _, err := c.get(t, widgets, ns, "dry"); !apierrors.IsNotFound(err) {
		t.Errorf("after dry run: get error = %v, want NotFound", err)
	}

	// The server still validates a dry run.
	invalid := writeManifest(t, "invalid.yaml", widget("dry", "green", -1, ""))
	r = mustFail(t, c.cairn(t, "apply", "-n", ns, "--dry-run=server", "-f", invalid))
	if !strings.Contains(r.stderr, "spec.size") {
		t.Errorf("stderr = %q, want the schema violation of spec.size", r.stderr)
	}
}

func TestApplyConflictsNeedForceConflicts(t *testing.T) {
	c := cluster(t)
	ns := c.namespace(t)
	// Another field manager owns spec.color.
	other := &unstructured.Unstructured{}
	other.SetAPIVersion("test.cairn.dev/v1")
	other.SetKind("Widget")
	other.SetName("contested")
	other.Object["spec"] = map[string]any{"color": "red"}
	if _, err := c.dynamic.Resource(widgets).Namespace(ns).Apply(t.Context(), "contested", other, metav1.ApplyOptions{FieldManager: "other-tool"}); err != nil {
		t.Fatal(err)
	}

	file := writeManifest(t, "widget.yaml", widget("contested", "blue", 1, ""))
	r := mustFail(t, c.cairn(t, "apply", "-n", ns, "-f", file))
	if !strings.Contains(r.stderr, `conflict with "other-tool"`) || !strings.Contains(r.stderr, "rerun with --force-conflicts") {
		t.Errorf("stderr = %q, want the conflict with other-tool and a --force-conflicts hint", r.stderr)
	}

	mustSucceed(t, c.cairn(t, "apply", "-n", ns, "--force-conflicts", "-f", file))
	w, err := c.get(t, widgets, ns, "contested")
	if err != nil {
		t.Fatal(err)
	}
	if color, _, _ := unstructured.NestedString(w.Object, "spec", "color"); color != "blue" {
		t.Errorf("spec.color = %q after --force-conflicts, want blue", color)
	}
}

func TestApplyNamespaceDefaulting(t *testing.T) {
	c := cluster(t)
	ns := c.namespace(t)
	kubeconfig := c.kubeconfigWithNamespace(t, ns)

	file := writeManifest(t, "widget.yaml", widget("from-context", "red", 1, ""))
	mustSucceed(t, c.cairn(t, "apply", "--kubeconfig", kubeconfig, "-f", file))
	if _, err := c.get(t, widgets, ns, "from-context"); err != nil {
		t.Errorf("widget was not created in the kubeconfig context's namespace %s: %v", ns, err)
	}

	elsewhere := writeManifest(t, "elsewhere.yaml", strings.Replace(widget("elsewhere", "red", 1, ""), "metadata:\n", "metadata:\n  namespace: kube-system\n", 1))
	r := mustFail(t, c.cairn(t, "apply", "-n", ns, "-f", elsewhere))
	if want := `the namespace from the provided object "kube-system" does not match the namespace "` + ns + `"`; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr = %q, want it to contain %q", r.stderr, want)
	}
}

func TestApplyReportsBadDocumentsAndAppliesTheRest(t *testing.T) {
	c := cluster(t)
	ns := c.namespace(t)
	file := writeManifest(t, "bad.yaml",
		widget("good-1", "red", 1, ""),
		"apiVersion: test.cairn.dev/v1\nkind: Widget\nmetadata:\n  name: [broken\n",
		"apiVersion: test.cairn.dev/v1\nkind: Nope\nmetadata:\n  name: unknown-kind\n",
		widget("typo", "red", 1, "  colour: blue\n"),
		widget("good-2", "blue", 2, ""),
	)

	r := mustFail(t, c.cairn(t, "apply", "-n", ns, "-f", file))

	if want := "widget.test.cairn.dev/good-1 serverside-applied\nwidget.test.cairn.dev/good-2 serverside-applied\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	errLines := regexp.MustCompile(`(?m)^error: .*$`).FindAllString(r.stderr, -1)
	wantErrs := []*regexp.Regexp{
		regexp.MustCompile(`^error: \S*bad\.yaml: document 2: yaml: line 4: `),
		regexp.MustCompile(`^error: \S*bad\.yaml: document 3: no matches for kind "Nope" in version "test.cairn.dev/v1"; ensure the CRDs are installed first$`),
		regexp.MustCompile(`^error: \S*bad\.yaml: document 4: applying widget.test.cairn.dev/typo: .*\.spec\.colour: field not declared in schema$`),
	}
	if len(errLines) != len(wantErrs) {
		t.Fatalf("got %d error lines, want %d:\n%s", len(errLines), len(wantErrs), r.stderr)
	}
	for i, re := range wantErrs {
		if !re.MatchString(errLines[i]) {
			t.Errorf("error line %d = %q, want it to match %s", i+1, errLines[i], re)
		}
	}
	for _, name := range []string{"good-1", "good-2"} {
		if _, err := c.get(t, widgets, ns, name); err != nil {
			t.Errorf("%s was not applied: %v", name, err)
		}
	}
	if _, err := c.get(t, widgets, ns, "typo"); !apierrors.IsNotFound(err) {
		t.Errorf("widget with an unknown field: get error = %v, want NotFound", err)
	}
}

func TestApplyKustomization(t *testing.T) {
	c := cluster(t)
	dir := filepath.Join("testdata", "kustomize")
	const ns = "cairn-kustomize-test" // created by the kustomization itself

	// The kustomization lists its Namespace last; it must be applied first.
	r := mustSucceed(t, c.cairn(t, "apply", "-k", dir))
	want := "namespace/" + ns + " serverside-applied\n" +
		"widget.test.cairn.dev/kz-sprocket serverside-applied\n" +
		"configmap/kz-settings serverside-applied\n"
	if r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}

	// namePrefix and labels prove the objects went through kustomize.
	const partOf = "app.kubernetes.io/part-of"
	cm, err := c.kube.CoreV1().ConfigMaps(ns).Get(t.Context(), "kz-settings", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("configmap kz-settings was not created in %s: %v", ns, err)
	}
	if cm.Labels[partOf] != "cairn-kustomize-test" || cm.Data["greeting"] != "hello" {
		t.Errorf("configmap labels = %v, data = %v; want the kustomization's label and greeting=hello", cm.Labels, cm.Data)
	}
	w, err := c.get(t, widgets, ns, "kz-sprocket")
	if err != nil {
		t.Fatalf("widget kz-sprocket was not created in %s: %v", ns, err)
	}
	if w.GetLabels()[partOf] != "cairn-kustomize-test" {
		t.Errorf("widget labels = %v, want the kustomization's label", w.GetLabels())
	}
	if size, _, _ := unstructured.NestedInt64(w.Object, "spec", "size"); size != 7 {
		t.Errorf("widget spec.size = %d, want 7", size)
	}
	namespace, err := c.kube.CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if namespace.Labels[partOf] != "cairn-kustomize-test" {
		t.Errorf("namespace labels = %v, want the kustomization's label", namespace.Labels)
	}
	if _, err := c.get(t, widgets, ns, "sprocket"); !apierrors.IsNotFound(err) {
		t.Errorf("unprefixed widget: get error = %v, want NotFound", err)
	}

	t.Run("-k and -f together are rejected", func(t *testing.T) {
		file := writeManifest(t, "widget.yaml", widget("not-applied", "red", 1, ""))
		r := mustFail(t, c.cairn(t, "apply", "-k", dir, "-f", file))
		if want := "error: only one of -f or -k can be specified\n"; r.stderr != want || r.stdout != "" {
			t.Errorf("stdout %q, stderr %q; want only %q on stderr", r.stdout, r.stderr, want)
		}
		if _, err := c.get(t, widgets, ns, "not-applied"); !apierrors.IsNotFound(err) {
			t.Errorf("widget from -f: get error = %v, want NotFound", err)
		}
	})
}

func TestApplyKustomizationReportsBadObjectsAndAppliesTheRest(t *testing.T) {
	c := cluster(t)
	ns := c.namespace(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "kustomization.yaml"), "resources:\n- widgets.yaml\nnameSuffix: -kz\n")
	writeFile(t, filepath.Join(dir, "widgets.yaml"), strings.Join([]string{
		widget("good", "red", 1, ""),
		widget("typo", "red", 1, "  colour: blue\n"),
	}, "---\n"))

	r := mustFail(t, c.cairn(t, "apply", "-n", ns, "-k", dir))
	if want := "widget.test.cairn.dev/good-kz serverside-applied\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	wantErr := regexp.MustCompile(`^error: kustomize ` + regexp.QuoteMeta(dir) + `: item 2: applying widget.test.cairn.dev/typo-kz: .*\.spec\.colour: field not declared in schema\n$`)
	if !wantErr.MatchString(r.stderr) {
		t.Errorf("stderr = %q, want it to match %s", r.stderr, wantErr)
	}
	if _, err := c.get(t, widgets, ns, "good-kz"); err != nil {
		t.Errorf("good-kz was not applied: %v", err)
	}
}

// TestApplyDirectoryCreatesNamespaceFirst applies a directory whose namespace
// file sorts after the file of objects in that namespace.
func TestApplyDirectoryCreatesNamespaceFirst(t *testing.T) {
	c := cluster(t)
	const ns = "cairn-apply-dir-test"
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app.yaml"), strings.Join([]string{
		strings.Replace(widget("w1", "red", 1, ""), "metadata:\n", "metadata:\n  namespace: "+ns+"\n", 1),
		strings.Replace(configMap("settings"), "metadata:\n", "metadata:\n  namespace: "+ns+"\n", 1),
	}, "---\n"))
	writeFile(t, filepath.Join(dir, "namespace.yaml"), "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: "+ns+"\n")

	r := mustSucceed(t, c.cairn(t, "apply", "-f", dir))
	want := "namespace/" + ns + " serverside-applied\n" +
		"widget.test.cairn.dev/w1 serverside-applied\n" +
		"configmap/settings serverside-applied\n"
	if r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	if _, err := c.get(t, widgets, ns, "w1"); err != nil {
		t.Errorf("widget was not created in %s: %v", ns, err)
	}
	if _, err := c.kube.CoreV1().ConfigMaps(ns).Get(t.Context(), "settings", metav1.GetOptions{}); err != nil {
		t.Errorf("configmap was not created in %s: %v", ns, err)
	}
}

func TestGetTables(t *testing.T) {
	c := cluster(t)
	ns := c.namespace(t)
	gadgetName := ns + "-gadget"
	mustSucceed(t, c.cairn(t, "apply", "-n", ns, "-f", writeManifest(t, "objects.yaml",
		widget("w1", "red", 3, "  owner: alice\n"),
		widget("w2", "blue", 5, "  owner: bob\n"),
		gadget(gadgetName, "mk2"),
	)))

	t.Run("short name shows printer columns", func(t *testing.T) {
		r := mustSucceed(t, c.cairn(t, "get", "wg", "-n", ns))
		assertLines(t, r.stdout,
			`^NAME\s+COLOR\s+SIZE\s+AGE$`,
			`^w1\s+red\s+3\s+\d+s$`,
			`^w2\s+blue\s+5\s+\d+s$`,
		)
	})
	t.Run("wide adds low-priority columns", func(t *testing.T) {
		r := mustSucceed(t, c.cairn(t, "get", "widgets", "-n", ns, "-o", "wide"))
		assertLines(t, r.stdout,
			`^NAME\s+COLOR\s+SIZE\s+OWNER\s+AGE$`,
			`^w1\s+red\s+3\s+alice\s+\d+s$`,
			`^w2\s+blue\s+5\s+bob\s+\d+s$`,
		)
	})
	t.Run("all namespaces adds a namespace column", func(t *testing.T) {
		r := mustSucceed(t, c.cairn(t, "get", "wg", "-A"))
		if !regexp.MustCompile(`(?m)^NAMESPACE\s+NAME\s+COLOR`).MatchString(r.stdout) ||
			!regexp.MustCompile(`(?m)^`+ns+`\s+w1\s+red\s+3`).MatchString(r.stdout) {
			t.Errorf("stdout lacks the NAMESPACE column or the %s/w1 row:\n%s", ns, r.stdout)
		}
	})
	t.Run("category lists every kind in it", func(t *testing.T) {
		r := mustSucceed(t, c.cairn(t, "get", "cairn", "-n", ns))
		sections := strings.Split(r.stdout, "\n\n")
		if len(sections) != 2 {
			t.Fatalf("want a widgets and a gadgets section separated by a blank line, got:\n%s", r.stdout)
		}
		// Sections follow discovery order, which this test does not pin down.
		widgetSection, gadgetSection := sections[0], sections[1]
		if strings.Contains(widgetSection, "gadget.test.cairn.dev/") {
			widgetSection, gadgetSection = gadgetSection, widgetSection
		}
		assertLines(t, widgetSection,
			`^NAME\s+COLOR\s+SIZE\s+AGE$`,
			`^widget.test.cairn.dev/w1\s+red\s+3\s`,
			`^widget.test.cairn.dev/w2\s+blue\s+5\s`,
		)
		if !regexp.MustCompile(`^NAME\s+MODEL\n`).MatchString(gadgetSection) {
			t.Errorf("gadget section lacks its printer columns:\n%s", gadgetSection)
		}
		// Gadget serves two versions; it must still be listed once.
		if n := strings.Count(r.stdout, "gadget.test.cairn.dev/"+gadgetName+" "); n != 1 {
			t.Errorf("gadget %s listed %d times, want once:\n%s", gadgetName, n, r.stdout)
		}
	})
	t.Run("resource names and kinds resolve to the same type", func(t *testing.T) {
		for _, typeArg := range []string{"widget", "Widget", "widgets.test.cairn.dev", "widgets.v1.test.cairn.dev", "Widget.v1.test.cairn.dev"} {
			r := mustSucceed(t, c.cairn(t, "get", typeArg, "w1", "-n", ns, "-o", "name"))
			if r.stdout != "widget.test.cairn.dev/w1\n" {
				t.Errorf("get %s w1 -o name = %q", typeArg, r.stdout)
			}
		}
	})
	t.Run("label selector", func(t *testing.T) {
		r := mustSucceed(t, c.cairn(t, "get", "wg", "-n", ns, "-l", "color=blue", "-o", "name"))
		if r.stdout != "widget.test.cairn.dev/w2\n" {
			t.Errorf("stdout = %q, want only w2", r.stdout)
		}
	})
}

// assertLines checks that output consists of lines matching patterns, in order.
func assertLines(t *testing.T, output string, patterns ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(output, "\n"), "\n")
	if len(lines) != len(patterns) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(patterns), output)
	}
	for i, p := range patterns {
		if !regexp.MustCompile(p).MatchString(lines[i]) {
			t.Errorf("line %d = %q, want it to match %s\nfull output:\n%s", i+1, lines[i], p, output)
		}
	}
}

func TestGetStructuredOutputRoundTrips(t *testing.T) {
	c := cluster(t)
	ns := c.namespace(t)
	mustSucceed(t, c.cairn(t, "apply", "-n", ns, "-f", writeManifest(t, "widgets.yaml",
		widget("w1", "red", 3, ""),
		widget("w2", "blue", 5, ""),
	)))
	server, err := c.get(t, widgets, ns, "w1")
	if err != nil {
		t.Fatal(err)
	}
	// Output omits managed fields, as kubectl's does.
	unstructured.RemoveNestedField(server.Object, "metadata", "managedFields")

	for _, format := range []string{"yaml", "json"} {
		t.Run(format, func(t *testing.T) {
			r := mustSucceed(t, c.cairn(t, "get", "wg", "w1", "-n", ns, "-o", format))
			got := decodeObject(t, r.stdout)
			if !equality.Semantic.DeepEqual(got.Object, server.Object) {
				t.Errorf("-o %s does not match the server's object\ngot:  %v\nwant: %v", format, got.Object, server.Object)
			}

			r = mustSucceed(t, c.cairn(t, "get", "wg", "-n", ns, "-o", format))
			list := decodeObject(t, r.stdout)
			items, _, _ := unstructured.NestedSlice(list.Object, "items")
			if list.GetKind() != "List" || len(items) != 2 {
				t.Errorf("listing: got kind %q with %d items, want a List of 2", list.GetKind(), len(items))
			}
		})
	}

	t.Run("output applies back unchanged", func(t *testing.T) {
		listed := mustSucceed(t, c.cairn(t, "get", "wg", "-n", ns, "-o", "yaml"))
		r := mustSucceed(t, c.cairnWithInput(t, listed.stdout, "apply", "-n", ns, "-f", "-"))
		if want := "widget.test.cairn.dev/w1 serverside-applied\nwidget.test.cairn.dev/w2 serverside-applied\n"; r.stdout != want {
			t.Errorf("stdout = %q, want %q", r.stdout, want)
		}
		after, err := c.get(t, widgets, ns, "w1")
		if err != nil {
			t.Fatal(err)
		}
		if after.GetResourceVersion() != server.GetResourceVersion() {
			t.Errorf("re-applying the output changed resourceVersion from %s to %s", server.GetResourceVersion(), after.GetResourceVersion())
		}
	})
}

// decodeObject decodes YAML or JSON the way the API machinery does, so it
// compares equal to objects from the dynamic client.
func decodeObject(t *testing.T, data string) *unstructured.Unstructured {
	t.Helper()
	jsonData, err := yaml.YAMLToJSON([]byte(data))
	if err != nil {
		t.Fatalf("decoding %q: %v", data, err)
	}
	obj := &unstructured.Unstructured{}
	if _, _, err := unstructured.UnstructuredJSONScheme.Decode(jsonData, nil, obj); err != nil {
		t.Fatalf("decoding %q: %v", data, err)
	}
	return obj
}

func TestGetErrors(t *testing.T) {
	c := cluster(t)
	ns := c.namespace(t)

	r := mustFail(t, c.cairn(t, "get", "nosuchthings"))
	if want := "error: the server doesn't have a resource type \"nosuchthings\"\n"; r.stderr != want {
		t.Errorf("unknown type: stderr = %q, want %q", r.stderr, want)
	}

	r = mustSucceed(t, c.cairn(t, "get", "wg", "-n", ns))
	if want := "No resources found in " + ns + " namespace.\n"; r.stdout != "" || r.stderr != want {
		t.Errorf("empty namespace: stdout %q, stderr %q; want only %q on stderr", r.stdout, r.stderr, want)
	}

	// Objects that exist are printed even when others are missing.
	mustSucceed(t, c.cairn(t, "apply", "-n", ns, "-f", writeManifest(t, "w.yaml", widget("w1", "red", 1, ""))))
	r = mustFail(t, c.cairn(t, "get", "wg", "w1", "missing", "-n", ns))
	if !regexp.MustCompile(`(?m)^w1\s+red`).MatchString(r.stdout) {
		t.Errorf("stdout lacks w1:\n%s", r.stdout)
	}
	if want := "error: widgets.test.cairn.dev \"missing\" not found\n"; r.stderr != want {
		t.Errorf("stderr = %q, want %q", r.stderr, want)
	}
}

// TestGetFindsCategoryInstalledAfterDiscoveryWasCached covers the common
// sequence of using cairn, installing CRDs, then listing their category:
// the on-disk discovery cache predates the category and must be refreshed.
func TestGetFindsCategoryInstalledAfterDiscoveryWasCached(t *testing.T) {
	c := cluster(t)
	ns := c.namespace(t)
	cacheDir := t.TempDir()

	mustSucceed(t, c.cairn(t, "get", "wg", "-n", ns, "--cache-dir", cacheDir))
	crds, err := envtest.InstallCRDs(c.config, envtest.CRDInstallOptions{Paths: []string{filepath.Join("testdata", "latecrds")}})
	if err != nil {
		t.Fatalf("installing CRDs: %v", err)
	}
	t.Cleanup(func() {
		if err := envtest.UninstallCRDs(c.config, envtest.CRDInstallOptions{CRDs: crds}); err != nil {
			t.Errorf("uninstalling CRDs: %v", err)
		}
	})

	r := mustSucceed(t, c.cairn(t, "get", "late", "-n", ns, "--cache-dir", cacheDir))
	if want := "No resources found in " + ns + " namespace.\n"; r.stderr != want {
		t.Errorf("stderr = %q, want %q", r.stderr, want)
	}
}

func TestDynamicCompletion(t *testing.T) {
	c := cluster(t)
	ns := c.namespace(t)
	mustSucceed(t, c.cairn(t, "apply", "-n", ns, "-f", writeManifest(t, "widgets.yaml",
		widget("w1", "red", 1, ""),
		widget("w2", "blue", 2, ""),
	)))

	// complete runs cobra's hidden completion entry point, as shell scripts do.
	complete := func(args ...string) []string {
		t.Helper()
		r := mustSucceed(t, c.cairn(t, append([]string{"__complete"}, args...)...))
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		// The last line is the directive; 4 is ShellCompDirectiveNoFileComp.
		if directive := lines[len(lines)-1]; directive != ":4" {
			t.Errorf("completing %v: directive %q, want :4", args, directive)
		}
		return lines[:len(lines)-1]
	}

	types := complete("get", "")
	for _, want := range []string{"widgets.test.cairn.dev", "gadgets.test.cairn.dev", "cairn", "namespaces"} {
		if !slices.Contains(types, want) {
			t.Errorf("type completions lack %q: %v", want, types)
		}
	}
	if names := complete("get", "wg", "-n", ns, ""); !slices.Equal(names, []string{"w1", "w2"}) {
		t.Errorf("name completions = %v, want [w1 w2]", names)
	}
	if names := complete("get", "wg", "w1", "-n", ns, ""); !slices.Equal(names, []string{"w2"}) {
		t.Errorf("name completions after w1 = %v, want [w2]", names)
	}
	if namespaces := complete("get", "wg", "-n", ""); !slices.Contains(namespaces, ns) {
		t.Errorf("namespace completions lack %q: %v", ns, namespaces)
	}
}

func TestVersionShowsServerVersion(t *testing.T) {
	c := cluster(t)

	r := mustSucceed(t, c.cairn(t, "version"))
	assertLines(t, r.stdout, `^Client Version: dev$`, `^Server Version: v1\.\d+\.\d+`)

	r = mustSucceed(t, c.cairn(t, "version", "-o", "yaml"))
	var info versionInfo
	if err := yaml.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatalf("decoding %q: %v", r.stdout, err)
	}
	if info.ServerVersion == nil || !strings.HasPrefix(info.ServerVersion.GitVersion, "v1.") {
		t.Errorf("serverVersion = %+v, want the API server's version", info.ServerVersion)
	}
}
