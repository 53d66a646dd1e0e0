package cli

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Shell completion scripts come from cobra's built-in "completion" command;
// the functions here supply the dynamic candidates, queried from the API.
// Failures yield no candidates rather than errors: a shell prompt is no
// place for error output.

// completeGetArgs completes resource types and categories for the first
// argument of get, and object names for the rest.
func completeGetArgs(f *factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return completeTypes(f), cobra.ShellCompDirectiveNoFileComp
		}
		allNamespaces, _ := cmd.Flags().GetBool("all-namespaces")
		names := completeNames(cmd, f, args[0], allNamespaces)
		// Skip names already on the command line.
		names = slices.DeleteFunc(names, func(n string) bool { return slices.Contains(args[1:], n) })
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeNamespaces completes -n with the cluster's namespaces.
func completeNamespaces(f *factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return completeNames(cmd, f, "namespaces", false), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeTypes lists what get accepts as TYPE: categories, and resources
// that can be listed, named resource.group outside the core group as in
// kubectl api-resources.
func completeTypes(f *factory) []cobra.Completion {
	disc, err := f.ToDiscoveryClient()
	if err != nil {
		cobra.CompDebugln(err.Error(), false)
		return nil
	}
	// Partial results are still useful when some API groups fail discovery.
	lists, err := disc.ServerPreferredResources()
	if err != nil {
		cobra.CompDebugln(err.Error(), false)
	}
	var types []cobra.Completion
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") {
				continue // Subresources and unlistable resources cannot be shown by get.
			}
			name := r.Name
			if gv.Group != "" {
				name += "." + gv.Group
			}
			types = append(types, name)
			types = append(types, r.Categories...)
		}
	}
	slices.Sort(types)
	return slices.Compact(types)
}

// completeNames lists the names of objects of typeArg in the namespace that
// the command line selects.
func completeNames(cmd *cobra.Command, f *factory, typeArg string, allNamespaces bool) []cobra.Completion {
	mappings, err := f.resolveTypes(typeArg)
	if err != nil || len(mappings) != 1 {
		return nil // Names only make sense for a single resource type.
	}
	namespace, _, err := f.namespace()
	if err != nil {
		cobra.CompDebugln(err.Error(), false)
		return nil
	}
	if allNamespaces {
		namespace = ""
	}
	client, err := f.restClient()
	if err != nil {
		cobra.CompDebugln(err.Error(), false)
		return nil
	}
	names, err := fetchNames(cmd.Context(), client, query{mapping: mappings[0], namespace: namespace})
	if err != nil {
		cobra.CompDebugln(err.Error(), false)
		return nil
	}
	return names
}
