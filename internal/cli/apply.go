package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/dynamic"
)

// fieldManager owns the fields cairn applies, so server-side apply can tell
// them apart from fields set by controllers or other tools.
const fieldManager = "cairn"

const (
	dryRunNone   = "none"
	dryRunServer = "server"
)

type applyOptions struct {
	f              *factory
	streams        genericiooptions.IOStreams
	filenames      []string
	kustomize      string
	recursive      bool
	forceConflicts bool
	dryRun         string
}

func newApplyCommand(f *factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &applyOptions{f: f, streams: streams}
	cmd := &cobra.Command{
		Use:   "apply (-f FILENAME | -k DIRECTORY)",
		Short: "Apply configuration to resources with server-side apply",
		Long: `Apply configuration to resources with server-side apply.

Every object in the given YAML or JSON files (-f), or built from the given
kustomization directory (-k, as "kubectl kustomize" would), is applied with
field manager "cairn". Namespaces and CustomResourceDefinitions are applied
before all other objects, so that objects can be applied together with the
namespace they live in; otherwise objects are applied in the order given.

Objects that fail to parse or apply are reported and skipped; the others are
still applied, and the command exits non-zero if any failed.`,
		Example: `  # Apply all manifests in a directory tree
  cairn apply -R -f manifests/

  # Apply the resources built from a kustomization directory
  cairn apply -k config/samples

  # Check manifests against the server without persisting anything
  cat route.yaml | cairn apply --dry-run=server -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return o.run(cmd.Context())
		},
	}
	cmd.Flags().StringSliceVarP(&o.filenames, "filename", "f", nil, "Files or directories containing the configuration to apply; - reads stdin.")
	cmd.Flags().StringVarP(&o.kustomize, "kustomize", "k", "", "Kustomization directory to build and apply; cannot be combined with -f.")
	cmd.Flags().BoolVarP(&o.recursive, "recursive", "R", false, "Process directories given with -f recursively.")
	cmd.Flags().BoolVar(&o.forceConflicts, "force-conflicts", false, "Take ownership of fields that other field managers currently own.")
	cmd.Flags().StringVar(&o.dryRun, "dry-run", dryRunNone, `Must be "none" or "server". With "server", the request is fully processed by the server but not persisted.`)
	// Whether -f or -k is given is checked in validate, with clearer messages
	// than cobra's required and mutually exclusive flag groups produce.
	if err := cmd.MarkFlagFilename("filename", "yaml", "yml", "json"); err != nil {
		panic(err) // The flag is registered just above; failure is a programming error.
	}
	if err := cmd.MarkFlagDirname("kustomize"); err != nil {
		panic(err)
	}
	if err := cmd.RegisterFlagCompletionFunc("dry-run", cobra.FixedCompletions([]cobra.Completion{dryRunNone, dryRunServer}, cobra.ShellCompDirectiveNoFileComp)); err != nil {
		panic(err)
	}
	return cmd
}

func (o *applyOptions) validate() error {
	switch {
	case len(o.filenames) > 0 && o.kustomize != "":
		return errors.New("only one of -f or -k can be specified")
	case len(o.filenames) == 0 && o.kustomize == "":
		return errors.New("must specify one of -f or -k")
	case o.kustomize != "" && o.recursive:
		return errors.New("-R applies to -f directories only; it cannot be used with -k")
	}
	if o.dryRun != dryRunNone && o.dryRun != dryRunServer {
		return fmt.Errorf("invalid --dry-run value %q: must be %q or %q", o.dryRun, dryRunNone, dryRunServer)
	}
	return nil
}

func (o *applyOptions) run(ctx context.Context) error {
	var manifests []manifest
	var err error
	if o.kustomize != "" {
		manifests, err = buildKustomization(o.kustomize)
	} else {
		manifests, err = readManifests(o.filenames, o.recursive, o.streams.In)
	}
	if err != nil {
		return err
	}
	if len(manifests) == 0 {
		return errors.New("no objects passed to apply")
	}
	sortForApply(manifests)
	namespace, enforceNamespace, err := o.f.namespace()
	if err != nil {
		return err
	}
	mapper, err := o.f.ToRESTMapper()
	if err != nil {
		return err
	}
	client, err := o.f.dynamicClient()
	if err != nil {
		return err
	}

	printer := &printers.NamePrinter{Operation: "serverside-applied"}
	if o.dryRun == dryRunServer {
		printer.Operation += " (server dry run)"
	}
	var errs []error
	for _, m := range manifests {
		if m.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.origin, m.err))
			continue
		}
		applied, err := o.apply(ctx, client, mapper, m.obj, namespace, enforceNamespace)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.origin, err))
			continue
		}
		if err := printer.PrintObj(applied, o.streams.Out); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// sortForApply stably orders manifests so that Namespaces, then
// CustomResourceDefinitions, are applied before the objects that may live in
// them or be of their kinds. Everything else, including manifests that failed
// to decode, keeps the order given.
func sortForApply(manifests []manifest) {
	slices.SortStableFunc(manifests, func(a, b manifest) int {
		return cmp.Compare(applyRank(a), applyRank(b))
	})
}

var (
	namespaceKind = schema.GroupKind{Kind: "Namespace"}
	crdKind       = schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}
)

func applyRank(m manifest) int {
	if m.obj == nil {
		return 2
	}
	switch m.obj.GroupVersionKind().GroupKind() {
	case namespaceKind:
		return 0
	case crdKind:
		return 1
	default:
		return 2
	}
}

// apply server-side applies obj. Namespaced objects without a namespace get
// namespace; with enforceNamespace (-n given) a different one is an error, as
// in kubectl, so -n never silently targets the wrong namespace.
func (o *applyOptions) apply(ctx context.Context, client dynamic.Interface, mapper meta.RESTMapper, obj *unstructured.Unstructured, namespace string, enforceNamespace bool) (*unstructured.Unstructured, error) {
	gvk := obj.GroupVersionKind()
	mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		return nil, fmt.Errorf("%w; ensure the CRDs are installed first", err)
	}
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", gvk, err)
	}
	name := obj.GetName()
	if name == "" {
		return nil, fmt.Errorf("%s has no metadata.name; server-side apply needs one", gvk.Kind)
	}

	resource := client.Resource(mapping.Resource)
	var target dynamic.ResourceInterface = resource
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		switch objNamespace := obj.GetNamespace(); {
		case objNamespace == "":
			obj.SetNamespace(namespace)
		case enforceNamespace && objNamespace != namespace:
			return nil, fmt.Errorf("the namespace from the provided object %q does not match the namespace %q; pass --namespace=%s to apply it", objNamespace, namespace, objNamespace)
		}
		target = resource.Namespace(obj.GetNamespace())
	}

	data, err := obj.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding %s %q: %w", gvk.Kind, name, err)
	}
	opts := metav1.PatchOptions{
		FieldManager: fieldManager,
		Force:        &o.forceConflicts,
		// Reject unknown and duplicate fields instead of dropping them, so
		// typos in manifests surface as errors (kubectl's --validate=strict).
		FieldValidation: metav1.FieldValidationStrict,
	}
	if o.dryRun == dryRunServer {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	applied, err := target.Patch(ctx, name, types.ApplyPatchType, data, opts)
	if err != nil {
		ref := strings.ToLower(mapping.GroupVersionKind.GroupKind().String()) + "/" + name
		if apierrors.IsConflict(err) && !o.forceConflicts {
			return nil, fmt.Errorf("applying %s: %w; rerun with --force-conflicts to take ownership of these fields", ref, err)
		}
		return nil, fmt.Errorf("applying %s: %w", ref, err)
	}
	return applied, nil
}
