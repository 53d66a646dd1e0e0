// Package translatetest builds translator inputs for tests and benchmarks.
package translatetest

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/xds/translate"
)

// SyntheticInput builds a gateway with n Routes over 10 hostnames; each Route
// has two rules (prefix + header match, weighted 90/10 over two of 50
// Services with 3 endpoints each, retries on the second rule).
func SyntheticInput(n int) *translate.Input {
	in := &translate.Input{Gateway: "bench"}
	const services = 50
	for s := 0; s < services; s++ {
		name := fmt.Sprintf("svc-%d", s)
		in.Services = append(in.Services, corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		})
		port, portName := int32(8080), "http"
		slice := discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			Ports:      []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
		}
		for e := 0; e < 3; e++ {
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", s/250, s%250, e+1)}})
		}
		in.EndpointSlices = append(in.EndpointSlices, slice)
	}
	w90, w10 := int32(90), int32(10)
	for i := 0; i < n; i++ {
		a, b := fmt.Sprintf("svc-%d", i%services), fmt.Sprintf("svc-%d", (i+1)%services)
		in.Routes = append(in.Routes, gatewayv1alpha1.Route{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: fmt.Sprintf("route-%d", i), Generation: 1},
			Spec: gatewayv1alpha1.RouteSpec{
				GatewayRef: gatewayv1alpha1.GatewayReference{Name: "bench"},
				Hostnames:  []gatewayv1alpha1.Hostname{gatewayv1alpha1.Hostname(fmt.Sprintf("h%d.example.com", i%10))},
				Rules: []gatewayv1alpha1.RouteRule{
					{
						Matches: []gatewayv1alpha1.RouteMatch{{Path: &gatewayv1alpha1.PathMatch{Type: gatewayv1alpha1.PathMatchPrefix, Value: fmt.Sprintf("/r%d", i)}}},
						Backends: []gatewayv1alpha1.Backend{
							{Service: &gatewayv1alpha1.ServiceBackend{Name: a, Port: 80}, Weight: &w90},
							{Service: &gatewayv1alpha1.ServiceBackend{Name: b, Port: 80}, Weight: &w10},
						},
					},
					{
						Matches: []gatewayv1alpha1.RouteMatch{{
							Path:    &gatewayv1alpha1.PathMatch{Type: gatewayv1alpha1.PathMatchExact, Value: fmt.Sprintf("/r%d/v2", i)},
							Headers: []gatewayv1alpha1.HeaderMatch{{Name: "x-version", Type: gatewayv1alpha1.StringMatchExact, Value: strPtr("2")}},
						}},
						Backends: []gatewayv1alpha1.Backend{{Service: &gatewayv1alpha1.ServiceBackend{Name: b, Port: 80}}},
						Retry:    &gatewayv1alpha1.RetryPolicy{Attempts: 2, RetryOn: []gatewayv1alpha1.RetryOn{"5xx", "unavailable"}},
					},
				},
			},
		})
	}
	return in
}

func strPtr(s string) *string { return &s }
