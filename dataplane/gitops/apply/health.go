package apply

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Problem is an inventory object that is not healthy.
type Problem struct {
	Object  Object
	Message string
}

func (p Problem) String() string { return p.Object.String() + ": " + p.Message }

// Health checks the objects of inv: Deployments, StatefulSets and DaemonSets
// must be rolled out (their controller observed the current generation and
// all replicas are updated and available), Jobs must be complete, and every
// other object must exist. The error is for failures to check, such as the
// API server being unreachable; unhealthy objects are Problems. Problems are
// in inventory order; with an error, only those before the object that
// could not be checked are returned.
//
// Objects whose health is their existence are checked with one
// metadata-only LIST per resource and namespace where the inventory has
// several, the others with GETs, DefaultConcurrency at a time.
func (a *Applier) Health(ctx context.Context, inv []Object) ([]Problem, error) {
	checks := a.healthMappings(ctx, inv)
	a.listForHealth(ctx, inv, checks)
	forEach(len(inv), DefaultConcurrency, func(i int) {
		c := &checks[i]
		if c.mapping == nil || c.err != nil || c.listed {
			return
		}
		live, err := a.get(ctx, c.mapping, inv[i])
		switch {
		case err != nil:
			c.err = err
		case live == nil:
			c.problem = "not found"
		default:
			c.problem = unhealthy(live)
		}
	})
	var problems []Problem
	for i, c := range checks {
		if c.err != nil {
			return problems, fmt.Errorf("checking %s: %w", inv[i], c.err)
		}
		if c.problem != "" {
			problems = append(problems, Problem{Object: inv[i], Message: c.problem})
		}
	}
	return problems, nil
}

// healthCheck is the state of one object's check.
type healthCheck struct {
	mapping *meta.RESTMapping
	listed  bool // decided from a metadata LIST
	problem string
	err     error
}

// healthMappings resolves the kind of every object, refreshing discovery
// once if a kind is unknown: it may be stale (a CRD applied since it was
// cached).
func (a *Applier) healthMappings(ctx context.Context, inv []Object) []healthCheck {
	checks := make([]healthCheck, len(inv))
	reset := false
	for i, o := range inv {
		gk := schema.GroupKind{Group: o.Group, Kind: o.Kind}
		mapping, err := a.mapper.RESTMappingWithContext(ctx, gk, o.Version)
		if meta.IsNoMatchError(err) && !reset {
			a.mapper.ResetWithContext(ctx)
			reset = true
			mapping, err = a.mapper.RESTMappingWithContext(ctx, gk, o.Version)
		}
		switch {
		case meta.IsNoMatchError(err):
			checks[i].problem = fmt.Sprintf("kind %s is not served by the API server", o.GroupVersionKind())
		case err != nil:
			checks[i].err = err
		default:
			checks[i].mapping = mapping
		}
	}
	return checks
}

// listForHealth decides, from metadata-only LISTs, the checks of objects
// that only need to exist, where a resource and namespace has several of
// them. Others, and those of a failed LIST, are left to GETs.
func (a *Applier) listForHealth(ctx context.Context, inv []Object, checks []healthCheck) {
	type key struct {
		resource  schema.GroupVersionResource
		namespace string
	}
	index := map[key]int{}
	var groups []*liveGroup
	var members [][]int
	for i, c := range checks {
		if c.mapping == nil || c.err != nil || rolloutKinds[c.mapping.GroupVersionKind.GroupKind()] {
			continue
		}
		k := key{c.mapping.Resource, inv[i].Namespace}
		g, ok := index[k]
		if !ok {
			g = len(groups)
			index[k] = g
			groups = append(groups, &liveGroup{resource: k.resource, namespace: k.namespace, namespaced: c.mapping.Scope.Name() == meta.RESTScopeNameNamespace})
			members = append(members, nil)
		}
		members[g] = append(members[g], i)
	}
	forEach(len(groups), DefaultConcurrency, func(g int) {
		if len(members[g]) < listThreshold {
			return
		}
		byName, err := a.listMetadata(ctx, groups[g])
		if err != nil {
			return
		}
		for _, i := range members[g] {
			c := &checks[i]
			c.listed = true
			switch m, ok := byName[inv[i].Name]; {
			case !ok:
				c.problem = "not found"
			case m.DeletionTimestamp != nil:
				c.problem = "being deleted"
			}
		}
	})
}

// rolloutKinds are the kinds whose health is more than existence.
var rolloutKinds = map[schema.GroupKind]bool{
	{Group: "apps", Kind: "Deployment"}:  true,
	{Group: "apps", Kind: "StatefulSet"}: true,
	{Group: "apps", Kind: "DaemonSet"}:   true,
	{Group: "batch", Kind: "Job"}:        true,
}

// unhealthy returns why obj is not healthy, or "".
func unhealthy(obj *unstructured.Unstructured) string {
	if obj.GetDeletionTimestamp() != nil {
		return "being deleted"
	}
	gk := obj.GroupVersionKind().GroupKind()
	switch gk {
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		return deploymentHealth(obj)
	case schema.GroupKind{Group: "apps", Kind: "StatefulSet"}:
		return statefulSetHealth(obj)
	case schema.GroupKind{Group: "apps", Kind: "DaemonSet"}:
		return daemonSetHealth(obj)
	case schema.GroupKind{Group: "batch", Kind: "Job"}:
		return jobHealth(obj)
	}
	return ""
}

func num(obj *unstructured.Unstructured, fields ...string) int64 {
	v, _, _ := unstructured.NestedInt64(obj.Object, fields...)
	return v
}

// notObserved reports a controller that has not caught up with the spec.
func notObserved(obj *unstructured.Unstructured) string {
	if observed := num(obj, "status", "observedGeneration"); observed < obj.GetGeneration() {
		return fmt.Sprintf("waiting for the controller to observe generation %d (observed %d)", obj.GetGeneration(), observed)
	}
	return ""
}

func specReplicas(obj *unstructured.Unstructured) int64 {
	replicas, found, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
	if !found {
		return 1
	}
	return replicas
}

func deploymentHealth(obj *unstructured.Unstructured) string {
	if msg := notObserved(obj); msg != "" {
		return msg
	}
	if status, reason, message := condition(obj, "Progressing"); status == "False" && reason == "ProgressDeadlineExceeded" {
		return "rollout failed: " + message
	}
	want := specReplicas(obj)
	updated := num(obj, "status", "updatedReplicas")
	total := num(obj, "status", "replicas")
	available := num(obj, "status", "availableReplicas")
	switch {
	case updated < want:
		return fmt.Sprintf("waiting for rollout: %d of %d replicas updated", updated, want)
	case total > updated:
		return fmt.Sprintf("waiting for rollout: %d old replicas pending termination", total-updated)
	case available < updated:
		return fmt.Sprintf("waiting for rollout: %d of %d updated replicas available", available, updated)
	}
	return ""
}

func statefulSetHealth(obj *unstructured.Unstructured) string {
	if msg := notObserved(obj); msg != "" {
		return msg
	}
	want := specReplicas(obj)
	ready := num(obj, "status", "readyReplicas")
	if strategy, _, _ := unstructured.NestedString(obj.Object, "spec", "updateStrategy", "type"); strategy != "OnDelete" {
		partition := num(obj, "spec", "updateStrategy", "rollingUpdate", "partition")
		if updated := num(obj, "status", "updatedReplicas"); updated < want-partition {
			return fmt.Sprintf("waiting for rollout: %d of %d replicas updated", updated, want-partition)
		}
		if partition == 0 {
			current, _, _ := unstructured.NestedString(obj.Object, "status", "currentRevision")
			update, _, _ := unstructured.NestedString(obj.Object, "status", "updateRevision")
			if current != update {
				return fmt.Sprintf("waiting for rollout: revision %s not yet current", update)
			}
		}
	}
	if ready < want {
		return fmt.Sprintf("waiting for rollout: %d of %d replicas ready", ready, want)
	}
	if available, found, _ := unstructured.NestedInt64(obj.Object, "status", "availableReplicas"); found && available < want {
		return fmt.Sprintf("waiting for rollout: %d of %d replicas available", available, want)
	}
	return ""
}

func daemonSetHealth(obj *unstructured.Unstructured) string {
	if msg := notObserved(obj); msg != "" {
		return msg
	}
	desired := num(obj, "status", "desiredNumberScheduled")
	if updated := num(obj, "status", "updatedNumberScheduled"); updated < desired {
		return fmt.Sprintf("waiting for rollout: %d of %d pods updated", updated, desired)
	}
	if available := num(obj, "status", "numberAvailable"); available < desired {
		return fmt.Sprintf("waiting for rollout: %d of %d updated pods available", available, desired)
	}
	return ""
}

func jobHealth(obj *unstructured.Unstructured) string {
	if status, reason, message := condition(obj, "Failed"); status == "True" {
		return fmt.Sprintf("job failed: %s %s", reason, message)
	}
	if status, _, _ := condition(obj, "Complete"); status == "True" {
		return ""
	}
	return "job not complete"
}
