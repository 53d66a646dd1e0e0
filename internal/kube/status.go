// Package kube holds small client helpers shared by the reconcilers.
package kube

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// PatchStatus sends the difference between base and obj's status as a merge
// patch, and nothing at all when they are equal, so an idempotent reconcile
// costs no write and triggers no watch event.
func PatchStatus(ctx context.Context, c client.Client, obj, base client.Object) error {
	data, err := client.MergeFrom(base).Data(obj)
	if err != nil {
		return fmt.Errorf("computing status patch: %w", err)
	}
	if string(data) == "{}" {
		return nil
	}
	if err := c.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, data)); err != nil {
		return fmt.Errorf("patching status of %s: %w", client.ObjectKeyFromObject(obj), err)
	}
	return nil
}

// PatchStatusLocked is PatchStatus with optimistic locking, for status that
// another writer changes too: a patch computed from a stale obj fails with
// a conflict instead of overwriting the other writer's fields (lists such
// as conditions are replaced whole by a merge patch).
func PatchStatusLocked(ctx context.Context, c client.Client, obj, base client.Object) error {
	data, err := client.MergeFrom(base).Data(obj)
	if err != nil {
		return fmt.Errorf("computing status patch: %w", err)
	}
	if string(data) == "{}" {
		return nil
	}
	if err := c.Status().Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("patching status of %s: %w", client.ObjectKeyFromObject(obj), err)
	}
	return nil
}
