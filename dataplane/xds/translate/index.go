package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
	serverlessv1alpha1 "github.com/cairn-platform/cairn/api/serverless/v1alpha1"
)

// index gives by-name access to the input objects.
type index struct {
	services     map[types.NamespacedName]*corev1.Service
	slices       map[types.NamespacedName][]*discoveryv1.EndpointSlice // by Service
	functions    map[types.NamespacedName]*serverlessv1alpha1.Function
	configMaps   map[types.NamespacedName]*corev1.ConfigMap
	authPolicies map[types.NamespacedName]*gatewayv1alpha1.AuthPolicy
	// policyTargets maps a Route to the AuthPolicies naming it in targetRefs.
	policyTargets map[types.NamespacedName][]*gatewayv1alpha1.AuthPolicy
	// clusters already built for some Route, shared read-only by the others.
	clusters map[string]builtCluster
}

type builtCluster struct {
	cluster   *clusterv3.Cluster
	endpoints *endpointv3.ClusterLoadAssignment
}

func newIndex(in *Input) *index {
	idx := &index{
		services:      map[types.NamespacedName]*corev1.Service{},
		slices:        map[types.NamespacedName][]*discoveryv1.EndpointSlice{},
		functions:     map[types.NamespacedName]*serverlessv1alpha1.Function{},
		configMaps:    map[types.NamespacedName]*corev1.ConfigMap{},
		authPolicies:  map[types.NamespacedName]*gatewayv1alpha1.AuthPolicy{},
		policyTargets: map[types.NamespacedName][]*gatewayv1alpha1.AuthPolicy{},
		clusters:      map[string]builtCluster{},
	}
	for i := range in.Services {
		s := &in.Services[i]
		idx.services[key(s.Namespace, s.Name)] = s
	}
	for i := range in.EndpointSlices {
		s := &in.EndpointSlices[i]
		if svc := s.Labels[discoveryv1.LabelServiceName]; svc != "" {
			k := key(s.Namespace, svc)
			idx.slices[k] = append(idx.slices[k], s)
		}
	}
	for i := range in.Functions {
		f := &in.Functions[i]
		idx.functions[key(f.Namespace, f.Name)] = f
	}
	for i := range in.ConfigMaps {
		c := &in.ConfigMaps[i]
		idx.configMaps[key(c.Namespace, c.Name)] = c
	}
	for i := range in.AuthPolicies {
		p := &in.AuthPolicies[i]
		idx.authPolicies[key(p.Namespace, p.Name)] = p
		for _, t := range p.Spec.TargetRefs {
			k := key(p.Namespace, t.Name)
			idx.policyTargets[k] = append(idx.policyTargets[k], p)
		}
	}
	return idx
}

func key(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

// authPolicyFor returns the policy guarding a route: its own authPolicyRef,
// else the oldest policy targeting it. ok is false when a named policy is
// missing.
func (idx *index) authPolicyFor(rt *gatewayv1alpha1.Route) (p *gatewayv1alpha1.AuthPolicy, ok bool) {
	if ref := rt.Spec.AuthPolicyRef; ref != nil {
		p, ok = idx.authPolicies[key(rt.Namespace, ref.Name)]
		return p, ok
	}
	var oldest *gatewayv1alpha1.AuthPolicy
	for _, cand := range idx.policyTargets[key(rt.Namespace, rt.Name)] {
		if oldest == nil || olderThan(cand.CreationTimestamp.Time, cand.Name, oldest.CreationTimestamp.Time, oldest.Name) {
			oldest = cand
		}
	}
	return oldest, true
}
