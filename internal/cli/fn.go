package cli

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// Values of Function spec.isolation.
const (
	isolationPooled     = "Pooled"
	isolationPerRequest = "PerRequest"
)

const (
	// moduleKey is the ConfigMap key holding the module.
	moduleKey = "module.wasm"
	// maxConfigMapModule is what fits in a ConfigMap (1 MiB of data).
	maxConfigMapModule = 1 << 20
	// digestAnnotation records the module's sha256 on its ConfigMap.
	digestAnnotation = "serverless.cairn.dev/module-sha256"
)

var functionKind = schema.GroupKind{Group: "serverless.cairn.dev", Kind: "Function"}

// durationPattern is the API's common.Duration.
var durationPattern = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)

func newFnCommand(f *factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fn",
		Short: "Manage serverless Functions",
		Long:  "Manage serverless Functions: WebAssembly modules run by Cairn function hosts.",
	}
	cmd.AddCommand(newFnDeployCommand(f, streams), newFnPushCommand(streams))
	return cmd
}

type fnDeployOptions struct {
	apply     applyOptions
	name      string
	filename  string
	isolation string
	timeout   string
}

func newFnDeployCommand(f *factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &fnDeployOptions{apply: applyOptions{f: f, streams: streams}}
	cmd := &cobra.Command{
		Use:   "deploy NAME -f MODULE.wasm",
		Short: "Create or update a Function from a WebAssembly module",
		Long: `Create or update a Function from a WebAssembly module.

The module is stored in the ConfigMap NAME-module (binaryData key
"module.wasm", its sha256 in an annotation), and the Function NAME refers to
it. Both are applied with server-side apply, field manager "cairn": running
the command again with a new module updates the Function in place, and
flags left out return their fields to the API defaults.

A ConfigMap holds at most 1 MiB; serve larger modules by URL or from an OCI
registry (spec.module.url, spec.module.oci) with cairn apply.`,
		Example: `  # Deploy the WAT example into the current namespace
  cairn fn deploy echo -f examples/functions/echo-wat/echo.wasm

  # A fresh instance for every request, 2 s per request
  cairn fn deploy echo -n fns -f echo.wasm --isolation PerRequest --timeout 2s`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.name = args[0]
			if err := o.validate(); err != nil {
				return err
			}
			return o.run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.filename, "filename", "f", "", "The WebAssembly module (.wasm) to deploy.")
	cmd.Flags().StringVar(&o.isolation, "isolation", "", `"Pooled" (instances reused, the API default) or "PerRequest" (a fresh instance per request).`)
	cmd.Flags().StringVar(&o.timeout, "timeout", "", `Deadline of one request, e.g. "500ms" or "10s" (API default 5s).`)
	cmd.Flags().BoolVar(&o.apply.forceConflicts, "force-conflicts", false, "Take ownership of fields that other field managers currently own.")
	cmd.Flags().StringVar(&o.apply.dryRun, "dry-run", dryRunNone, `Must be "none" or "server". With "server", the request is fully processed by the server but not persisted.`)
	if err := cmd.MarkFlagRequired("filename"); err != nil {
		panic(err) // The flag is registered just above; failure is a programming error.
	}
	if err := cmd.MarkFlagFilename("filename", "wasm"); err != nil {
		panic(err)
	}
	if err := cmd.RegisterFlagCompletionFunc("isolation", cobra.FixedCompletions([]cobra.Completion{isolationPooled, isolationPerRequest}, cobra.ShellCompDirectiveNoFileComp)); err != nil {
		panic(err)
	}
	if err := cmd.RegisterFlagCompletionFunc("dry-run", cobra.FixedCompletions([]cobra.Completion{dryRunNone, dryRunServer}, cobra.ShellCompDirectiveNoFileComp)); err != nil {
		panic(err)
	}
	return cmd
}

func (o *fnDeployOptions) validate() error {
	var errs []error
	switch strings.ToLower(o.isolation) {
	case "":
	case "pooled":
		o.isolation = isolationPooled
	case "perrequest", "per-request":
		o.isolation = isolationPerRequest
	default:
		errs = append(errs, fmt.Errorf("invalid --isolation %q: must be %q or %q", o.isolation, isolationPooled, isolationPerRequest))
	}
	if o.timeout != "" && !durationPattern.MatchString(o.timeout) {
		errs = append(errs, fmt.Errorf(`invalid --timeout %q: want a duration in h, m, s or ms such as "500ms" or "1m30s"`, o.timeout))
	}
	if o.apply.dryRun != dryRunNone && o.apply.dryRun != dryRunServer {
		errs = append(errs, fmt.Errorf("invalid --dry-run value %q: must be %q or %q", o.apply.dryRun, dryRunNone, dryRunServer))
	}
	// NAME-module must be a valid ConfigMap name too.
	if len(o.name) > 253-len("-module") {
		errs = append(errs, fmt.Errorf("function name %q is too long", o.name))
	}
	return errors.Join(errs...)
}

func (o *fnDeployOptions) run(ctx context.Context) error {
	wasm, err := os.ReadFile(o.filename)
	if err != nil {
		return fmt.Errorf("reading module: %w", err)
	}
	if !strings.HasPrefix(string(wasm), "\x00asm") {
		return fmt.Errorf("%s is not a WebAssembly binary module (no \\0asm magic number)", o.filename)
	}
	if len(wasm) > maxConfigMapModule {
		return fmt.Errorf("%s is %d bytes, over the %d a ConfigMap holds: serve it by URL or OCI (spec.module.url or spec.module.oci) and use cairn apply", o.filename, len(wasm), maxConfigMapModule)
	}
	namespace, _, err := o.apply.f.namespace()
	if err != nil {
		return err
	}
	mapper, err := o.apply.f.ToRESTMapper()
	if err != nil {
		return err
	}
	client, err := o.apply.f.dynamicClient()
	if err != nil {
		return err
	}
	// Without the Function CRD, fail before storing the module.
	if _, err := mapper.RESTMapping(functionKind, "v1alpha1"); err != nil {
		if meta.IsNoMatchError(err) {
			return fmt.Errorf("%w; ensure the Cairn CRDs are installed first", err)
		}
		return fmt.Errorf("resolving %s: %w", functionKind, err)
	}
	sum := sha256.Sum256(wasm)
	digest := hex.EncodeToString(sum[:])
	configMap, function := fnObjects(o.name, namespace, wasm, digest, o.isolation, o.timeout)

	suffix := ""
	if o.apply.dryRun == dryRunServer {
		suffix = " (server dry run)"
	}
	if _, err := o.apply.apply(ctx, client, mapper, configMap, namespace, false); err != nil {
		return err
	}
	fmt.Fprintf(o.apply.streams.Out, "configmap/%s serverside-applied%s: %d bytes, sha256:%s\n", configMap.GetName(), suffix, len(wasm), digest)
	if _, err := o.apply.apply(ctx, client, mapper, function, namespace, false); err != nil {
		return err
	}
	fmt.Fprintf(o.apply.streams.Out, "function.serverless.cairn.dev/%s serverside-applied%s in namespace %s\n", o.name, suffix, namespace)
	return nil
}

// fnObjects builds the ConfigMap holding the module and the Function using
// it; empty isolation and timeout are left to the API defaults.
func fnObjects(name, namespace string, wasm []byte, digest, isolation, timeout string) (configMap, function *unstructured.Unstructured) {
	labels := func() map[string]any {
		return map[string]any{"app.kubernetes.io/managed-by": "cairn", "serverless.cairn.dev/function": name}
	}
	configMap = &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata": map[string]any{
			"name":        name + "-module",
			"namespace":   namespace,
			"labels":      labels(),
			"annotations": map[string]any{digestAnnotation: digest},
		},
		"binaryData": map[string]any{moduleKey: base64.StdEncoding.EncodeToString(wasm)},
	}}
	spec := map[string]any{
		"module": map[string]any{"configMap": map[string]any{"name": name + "-module", "key": moduleKey}},
	}
	if isolation != "" {
		spec["isolation"] = isolation
	}
	if timeout != "" {
		spec["limits"] = map[string]any{"timeout": timeout}
	}
	function = &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "serverless.cairn.dev/v1alpha1",
		"kind":       "Function",
		"metadata":   map[string]any{"name": name, "namespace": namespace, "labels": labels()},
		"spec":       spec,
	}}
	return configMap, function
}
