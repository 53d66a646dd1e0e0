package funchost

import "errors"

// Errors returned by Function.Invoke, wrapped with detail; test them with
// errors.Is. Handler maps them to HTTP statuses.
var (
	// ErrRequestTooLarge: the request body exceeds Config.MaxRequestBytes.
	ErrRequestTooLarge = errors.New("request body too large")
	// ErrResponseTooLarge: the guest's response exceeds Config.MaxResponseBytes.
	ErrResponseTooLarge = errors.New("response too large")
	// ErrTimeout: no instance was free, or the guest did not return, before
	// the deadline.
	ErrTimeout = errors.New("function timed out")
	// ErrTrap: the guest trapped, exited or broke the ABI; its instance was
	// discarded.
	ErrTrap = errors.New("function trapped")
	// ErrClosed: the Function or its Host was closed.
	ErrClosed = errors.New("function closed")
)
