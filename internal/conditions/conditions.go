// Package conditions records status conditions the Kubernetes way: one per
// type, stamped with the generation they describe, transition time kept when
// the status does not change.
package conditions

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Set records condition typ on conds for generation gen.
func Set(conds *[]metav1.Condition, gen int64, typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type:               typ,
		Status:             status,
		ObservedGeneration: gen,
		Reason:             reason,
		Message:            truncate(message),
	})
}

// True records a True condition.
func True(conds *[]metav1.Condition, gen int64, typ, reason, message string) {
	Set(conds, gen, typ, metav1.ConditionTrue, reason, message)
}

// False records a False condition.
func False(conds *[]metav1.Condition, gen int64, typ, reason, message string) {
	Set(conds, gen, typ, metav1.ConditionFalse, reason, message)
}

// Unknown records an Unknown condition.
func Unknown(conds *[]metav1.Condition, gen int64, typ, reason, message string) {
	Set(conds, gen, typ, metav1.ConditionUnknown, reason, message)
}

// IsTrue reports whether condition typ is present and True.
func IsTrue(conds []metav1.Condition, typ string) bool {
	return meta.IsStatusConditionTrue(conds, typ)
}

// maxMessage is the API server's limit on Condition.Message.
const maxMessage = 32768

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return s[:maxMessage-3] + "..."
}
