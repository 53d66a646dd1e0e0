package translate

import (
	"errors"
	"fmt"
)

// Reason classifies why a Route was not accepted; controllers use it as the
// reason of the Accepted condition.
type Reason string

// Reasons a Route is refused.
const (
	ReasonInvalid            Reason = "Invalid"
	ReasonBackendNotFound    Reason = "BackendNotFound"
	ReasonRefNotFound        Reason = "RefNotFound"
	ReasonRefNotAccepted     Reason = "RefNotAccepted"
	ReasonDescriptorNotFound Reason = "DescriptorNotFound"
	ReasonInvalidDescriptor  Reason = "InvalidDescriptor"
	ReasonConflicted         Reason = "Conflicted"
	ReasonUnsupported        Reason = "Unsupported"
)

type problem struct {
	reason Reason
	err    error
}

func (p *problem) Error() string { return p.err.Error() }
func (p *problem) Unwrap() error { return p.err }

// problemf is fmt.Errorf with a reason attached.
func problemf(reason Reason, format string, args ...any) error {
	return &problem{reason: reason, err: fmt.Errorf(format, args...)}
}

// ReasonOf returns the reason of the first classified problem in err.
func ReasonOf(err error) Reason {
	var p *problem
	if errors.As(err, &p) {
		return p.reason
	}
	return ReasonInvalid
}
