// Package scheme builds the runtime scheme of every Cairn API plus the
// built-in Kubernetes types. It depends on the API packages only, so
// controllers, CLIs and test environments can all share it without import
// cycles.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
)

// New returns a scheme with the built-in types and every Cairn API.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(gatewayv1alpha1.AddToScheme(s))
	utilruntime.Must(gitopsv1alpha1.AddToScheme(s))
	utilruntime.Must(edgev1alpha1.AddToScheme(s))
	utilruntime.Must(serverlessv1alpha1.AddToScheme(s))
	return s
}
