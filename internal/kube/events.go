package kube

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
)

// maxEventNote is the API server's limit on an Event's note.
const maxEventNote = 1024

// Warn records a Warning event. The message is not a format string (problem
// texts contain regexes and JSON), and is cut to the size the API accepts:
// the full text is in the object's conditions.
func Warn(r events.EventRecorder, obj runtime.Object, reason, action, message string) {
	if len(message) > maxEventNote {
		message = message[:maxEventNote-3] + "..."
	}
	r.Eventf(obj, nil, corev1.EventTypeWarning, reason, action, "%s", message)
}
