package integration

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
)

// Empty typed objects by name, and accessors for their conditions, so tables
// can name what to watch.

func route(name string) client.Object { return named(&gatewayv1alpha1.Route{}, name) }
func authPolicy(name string) client.Object {
	return named(&gatewayv1alpha1.AuthPolicy{}, name)
}
func gitRepo(name string) client.Object    { return named(&gitopsv1alpha1.GitRepo{}, name) }
func edgeDevice(name string) client.Object { return named(&edgev1alpha1.EdgeDevice{}, name) }
func firmwareObj() client.Object           { return named(&edgev1alpha1.Firmware{}, "fw") }
func function(name string) client.Object   { return named(&serverlessv1alpha1.Function{}, name) }

func named(obj client.Object, name string) client.Object {
	obj.SetName(name)
	return obj
}

func routeConds(o client.Object) *[]metav1.Condition {
	return &o.(*gatewayv1alpha1.Route).Status.Conditions
}
func authPolicyConds(o client.Object) *[]metav1.Condition {
	return &o.(*gatewayv1alpha1.AuthPolicy).Status.Conditions
}
func gitRepoConds(o client.Object) *[]metav1.Condition {
	return &o.(*gitopsv1alpha1.GitRepo).Status.Conditions
}
func edgeDeviceConds(o client.Object) *[]metav1.Condition {
	return &o.(*edgev1alpha1.EdgeDevice).Status.Conditions
}
func firmwareConds(o client.Object) *[]metav1.Condition {
	return &o.(*edgev1alpha1.Firmware).Status.Conditions
}
func functionConds(o client.Object) *[]metav1.Condition {
	return &o.(*serverlessv1alpha1.Function).Status.Conditions
}
