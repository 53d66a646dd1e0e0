package kube

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// GetIfExists reads key into obj and reports whether it exists: NotFound is an
// answer (false), any other failure is an error to retry on.
func GetIfExists(ctx context.Context, c client.Reader, key types.NamespacedName, obj client.Object) (bool, error) {
	if err := c.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("getting %T %s: %w", obj, key, err)
	}
	return true, nil
}
