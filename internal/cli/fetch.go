package cli

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
)

// Media types for GET requests. The server renders tables itself, which is
// how CRD additionalPrinterColumns reach the output.
const (
	acceptTable    = "application/json;as=Table;v=v1;g=meta.k8s.io"
	acceptObjects  = "application/json"
	acceptMetadata = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
)

// query selects objects of one resource: a single object when name is set,
// otherwise the collection filtered by selector.
type query struct {
	mapping   *meta.RESTMapping
	namespace string // empty selects all namespaces
	name      string
	selector  string
}

// fetch GETs q as accept and returns the raw response body.
func fetch(ctx context.Context, client rest.Interface, q query, accept string) ([]byte, error) {
	gv := q.mapping.Resource.GroupVersion()
	prefix := []string{"/apis", gv.Group, gv.Version}
	if gv.Group == "" {
		prefix = []string{"/api", gv.Version}
	}
	req := client.Get().
		AbsPath(prefix...).
		NamespaceIfScoped(q.namespace, q.mapping.Scope.Name() == meta.RESTScopeNameNamespace).
		Resource(q.mapping.Resource.Resource).
		SetHeader("Accept", accept)
	if q.name != "" {
		req = req.Name(q.name)
	}
	if q.selector != "" {
		req = req.Param("labelSelector", q.selector)
	}
	result := req.Do(ctx)
	// Error, unlike Raw, decodes the server's Status into a typed API error.
	if err := result.Error(); err != nil {
		return nil, err
	}
	return result.Raw()
}

// fetchTable returns q rendered as a server-side table.
func fetchTable(ctx context.Context, client rest.Interface, q query) (*metav1.Table, error) {
	body, err := fetch(ctx, client, q, acceptTable)
	if err != nil {
		return nil, err
	}
	table := &metav1.Table{}
	if err := json.Unmarshal(body, table); err != nil {
		return nil, fmt.Errorf("decoding table of %s: %w", q.mapping.Resource.GroupResource(), err)
	}
	if table.Kind != "Table" {
		return nil, fmt.Errorf("the server returned %q instead of a Table for %s", table.Kind, q.mapping.Resource.GroupResource())
	}
	// Rows carry their object's metadata, which the printer needs for the
	// NAMESPACE column.
	for i := range table.Rows {
		row := &table.Rows[i]
		if row.Object.Raw == nil {
			continue
		}
		obj, err := runtime.Decode(unstructured.UnstructuredJSONScheme, row.Object.Raw)
		if err != nil {
			return nil, fmt.Errorf("decoding table row of %s: %w", q.mapping.Resource.GroupResource(), err)
		}
		row.Object.Object = obj
	}
	return table, nil
}

// fetchObjects returns the objects q selects.
func fetchObjects(ctx context.Context, client rest.Interface, q query) ([]unstructured.Unstructured, error) {
	body, err := fetch(ctx, client, q, acceptObjects)
	if err != nil {
		return nil, err
	}
	obj, err := runtime.Decode(unstructured.UnstructuredJSONScheme, body)
	if err != nil {
		return nil, fmt.Errorf("decoding %s: %w", q.mapping.Resource.GroupResource(), err)
	}
	switch obj := obj.(type) {
	case *unstructured.UnstructuredList:
		return obj.Items, nil
	case *unstructured.Unstructured:
		return []unstructured.Unstructured{*obj}, nil
	default:
		return nil, fmt.Errorf("decoding %s: unexpected %T", q.mapping.Resource.GroupResource(), obj)
	}
}

// fetchNames returns the names of the objects q selects, asking only for
// metadata so completion stays fast on large collections.
func fetchNames(ctx context.Context, client rest.Interface, q query) ([]string, error) {
	body, err := fetch(ctx, client, q, acceptMetadata)
	if err != nil {
		return nil, err
	}
	list := &metav1.PartialObjectMetadataList{}
	if err := json.Unmarshal(body, list); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", q.mapping.Resource.GroupResource(), err)
	}
	names := make([]string, 0, len(list.Items))
	for _, item := range list.Items {
		names = append(names, item.Name)
	}
	return names, nil
}
