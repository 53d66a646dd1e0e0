package apply

import "context"

// DeleteAll deletes every object of inventory that still exists, except
// those annotated PruneAnnotation=PruneDisabled: Namespaces and CRDs last,
// like a prune of everything. It is what deleting a GitRepo with prune
// enabled does. It returns what was deleted and what must stay tracked
// because deleting it failed.
func (a *Applier) DeleteAll(ctx context.Context, inventory []Object) (deleted, kept []Object, err error) {
	a.mapper.ResetWithContext(ctx)
	return a.prune(ctx, nil, inventory, false)
}
