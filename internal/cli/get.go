package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/rest"
)

var getOutputFormats = []string{"table", "wide", "yaml", "json", "name"}

type getOptions struct {
	f             *factory
	streams       genericiooptions.IOStreams
	output        string
	selector      string
	allNamespaces bool
}

func newGetCommand(f *factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &getOptions{f: f, streams: streams}
	cmd := &cobra.Command{
		Use:   "get TYPE [NAME...]",
		Short: "Display one or many resources",
		Long: `Display one or many resources.

TYPE is a resource name (plural, singular or short, e.g. "routes", "route",
"rt"), a Kind, or a category: "cairn get cairn" lists every Cairn resource.
Tables are rendered by the server, so they include the printer columns that
each CRD defines.`,
		Example: `  # List routes in the current namespace, with extra columns
  cairn get rt -o wide

  # List all Cairn resources in every namespace
  cairn get cairn -A

  # Print one firmware object as YAML
  cairn get fw edge-2024-06 -o yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("you must specify the type of resource to get, e.g. %q\nSee '%s -h' for help and examples", "cairn get cairn", cmd.CommandPath())
			}
			return nil
		},
		ValidArgsFunction: completeGetArgs(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.validate(args[1:]); err != nil {
				return err
			}
			return o.run(cmd.Context(), args[0], args[1:])
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "Output format. One of: ("+strings.Join(getOutputFormats, ", ")+").")
	cmd.Flags().StringVarP(&o.selector, "selector", "l", "", "Label selector to filter on, e.g. -l 'app=web,tier!=db'.")
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "List objects across all namespaces.")
	if err := cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(getOutputFormats, cobra.ShellCompDirectiveNoFileComp)); err != nil {
		panic(err) // The flag is registered just above; failure is a programming error.
	}
	return cmd
}

func (o *getOptions) validate(names []string) error {
	switch {
	case !slices.Contains(getOutputFormats, o.output):
		return fmt.Errorf("invalid output format %q: must be one of %s", o.output, strings.Join(getOutputFormats, ", "))
	case len(names) > 0 && o.selector != "":
		return errors.New("a name cannot be combined with a label selector (-l)")
	case len(names) > 0 && o.allNamespaces:
		return errors.New("a resource cannot be retrieved by name across all namespaces (-A)")
	}
	return nil
}

func (o *getOptions) run(ctx context.Context, typeArg string, names []string) error {
	mappings, err := o.f.resolveTypes(typeArg)
	if err != nil {
		return err
	}
	if len(names) > 0 && len(mappings) > 1 {
		return fmt.Errorf("%q is a category of %d resource types; getting by name needs a single resource type", typeArg, len(mappings))
	}
	namespace, _, err := o.f.namespace()
	if err != nil {
		return err
	}
	if o.allNamespaces {
		namespace = ""
	}
	client, err := o.f.restClient()
	if err != nil {
		return err
	}

	if o.output == "table" || o.output == "wide" {
		return o.printTables(ctx, client, mappings, namespace, names)
	}
	return o.printObjects(ctx, client, mappings, namespace, names)
}

// queries returns the requests for one resource type: one per name, or a
// single list request.
func (o *getOptions) queries(mapping *meta.RESTMapping, namespace string, names []string) []query {
	base := query{mapping: mapping, namespace: namespace, selector: o.selector}
	if len(names) == 0 {
		return []query{base}
	}
	queries := make([]query, 0, len(names))
	for _, name := range names {
		q := base
		q.name = name
		queries = append(queries, q)
	}
	return queries
}

// printTables prints one table per resource type, separated by blank lines,
// prefixing names with their kind when several types are shown (as kubectl
// does for categories).
func (o *getOptions) printTables(ctx context.Context, client rest.Interface, mappings []*meta.RESTMapping, namespace string, names []string) error {
	w := printers.GetNewTabWriter(o.streams.Out)
	var errs []error
	printed, allNamespaced := false, true
	for _, mapping := range mappings {
		namespaced := mapping.Scope.Name() == meta.RESTScopeNameNamespace
		allNamespaced = allNamespaced && namespaced

		var tables []*metav1.Table
		for _, q := range o.queries(mapping, namespace, names) {
			table, err := fetchTable(ctx, client, q)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if len(table.Rows) > 0 {
				tables = append(tables, table)
			}
		}
		if len(tables) == 0 {
			continue
		}

		if printed {
			// Each type has its own columns, so align each section separately.
			if err := w.Flush(); err != nil {
				return err
			}
			w.SetRememberedWidths(nil)
			fmt.Fprintln(w)
		}
		printer := printers.NewTablePrinter(printers.PrintOptions{
			Wide:          o.output == "wide",
			WithNamespace: o.allNamespaces && namespaced,
			WithKind:      len(mappings) > 1,
			Kind:          mapping.GroupVersionKind.GroupKind(),
		})
		for _, table := range tables {
			if err := printer.PrintObj(table, w); err != nil {
				return fmt.Errorf("printing %s: %w", mapping.Resource.GroupResource(), err)
			}
		}
		printed = true
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if !printed && len(errs) == 0 {
		if allNamespaced && namespace != "" {
			fmt.Fprintf(o.streams.ErrOut, "No resources found in %s namespace.\n", namespace)
		} else {
			fmt.Fprintln(o.streams.ErrOut, "No resources found")
		}
	}
	return errors.Join(errs...)
}

// printObjects prints the selected objects as YAML, JSON or names. Like
// kubectl, a single object requested by name is printed bare; anything else
// is wrapped in a v1 List so the output can be applied back.
func (o *getOptions) printObjects(ctx context.Context, client rest.Interface, mappings []*meta.RESTMapping, namespace string, names []string) error {
	var items []unstructured.Unstructured
	var errs []error
	for _, mapping := range mappings {
		for _, q := range o.queries(mapping, namespace, names) {
			objs, err := fetchObjects(ctx, client, q)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			items = append(items, objs...)
		}
	}
	if len(errs) > 0 && len(items) == 0 {
		return errors.Join(errs...)
	}

	var printer printers.ResourcePrinter
	switch o.output {
	case "name":
		printer = &printers.NamePrinter{}
	case "json":
		// Managed fields are bookkeeping noise for readers; kubectl hides them too.
		printer = &printers.OmitManagedFieldsPrinter{Delegate: &printers.JSONPrinter{}}
	case "yaml":
		printer = &printers.OmitManagedFieldsPrinter{Delegate: &printers.YAMLPrinter{}}
	}
	// With a single name, getting here means that object was found.
	if len(names) == 1 {
		if err := printer.PrintObj(&items[0], o.streams.Out); err != nil {
			return fmt.Errorf("printing %s: %w", items[0].GetName(), err)
		}
		return nil
	}
	list := &unstructured.UnstructuredList{
		Object: map[string]any{"apiVersion": "v1", "kind": "List", "metadata": map[string]any{"resourceVersion": ""}},
		Items:  items,
	}
	if err := printer.PrintObj(list, o.streams.Out); err != nil {
		return fmt.Errorf("printing list: %w", err)
	}
	return errors.Join(errs...)
}
