package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
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

// ConfigMapKey reads one key of a ConfigMap from binaryData or data
// (`kubectl create configmap --from-file` puts valid UTF-8 in data, the rest
// in binaryData). problem says, for a person, what is missing: the
// ConfigMap or the key.
func ConfigMapKey(ctx context.Context, c client.Reader, namespace, name, key string) (value []byte, problem string, err error) {
	var cm corev1.ConfigMap
	found, err := GetIfExists(ctx, c, types.NamespacedName{Namespace: namespace, Name: name}, &cm)
	if err != nil || !found {
		return nil, fmt.Sprintf("ConfigMap %q not found", name), err
	}
	if b, ok := cm.BinaryData[key]; ok {
		return b, "", nil
	}
	if s, ok := cm.Data[key]; ok {
		return []byte(s), "", nil
	}
	return nil, fmt.Sprintf("ConfigMap %q has no key %q", name, key), nil
}
