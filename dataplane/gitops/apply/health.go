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
// API server being unreachable; unhealthy objects are Problems.
func (a *Applier) Health(ctx context.Context, inv []Object) ([]Problem, error) {
	var problems []Problem
	for _, o := range inv {
		gk := schema.GroupKind{Group: o.Group, Kind: o.Kind}
		mapping, err := a.mapper.RESTMappingWithContext(ctx, gk, o.Version)
		if meta.IsNoMatchError(err) {
			// Discovery may be stale (a CRD applied since it was cached).
			a.mapper.ResetWithContext(ctx)
			mapping, err = a.mapper.RESTMappingWithContext(ctx, gk, o.Version)
		}
		if meta.IsNoMatchError(err) {
			problems = append(problems, Problem{Object: o, Message: fmt.Sprintf("kind %s is not served by the API server", o.GroupVersionKind())})
			continue
		}
		if err != nil {
			return problems, fmt.Errorf("checking %s: %w", o, err)
		}
		live, err := a.get(ctx, mapping, o)
		if err != nil {
			return problems, fmt.Errorf("checking %s: %w", o, err)
		}
		if live == nil {
			problems = append(problems, Problem{Object: o, Message: "not found"})
			continue
		}
		if msg := unhealthy(live); msg != "" {
			problems = append(problems, Problem{Object: o, Message: msg})
		}
	}
	return problems, nil
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
