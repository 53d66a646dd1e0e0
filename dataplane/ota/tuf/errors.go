package tuf

import (
	"errors"
	"fmt"
)

// Errors returned by this package; match them with errors.Is. The returned
// errors carry a message naming the file and the reason.
var (
	// ErrExpired: metadata is past its expiry (possibly a freeze attack).
	ErrExpired = errors.New("metadata expired")
	// ErrRollback: metadata is older than the trusted metadata.
	ErrRollback = errors.New("rollback of metadata")
	// ErrSignatures: fewer than a role's threshold of valid signatures.
	ErrSignatures = errors.New("signature threshold not met")
	// ErrMismatch: a file's length or hash differs from the recorded one.
	ErrMismatch = errors.New("length or hash mismatch")
	// ErrMixAndMatch: metadata files belong to different repository states.
	ErrMixAndMatch = errors.New("mix-and-match of metadata")
	// ErrNotFound: a file, target or trusted metadata does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: malformed metadata, keys or arguments.
	ErrInvalid = errors.New("invalid")
	// ErrTooLarge: a fetched file exceeds its size limit.
	ErrTooLarge = errors.New("file too large")
)

// kindError carries a complete, human-readable message and matches the
// sentinel kinds with errors.Is without repeating their text.
type kindError struct {
	kinds []error
	err   error
}

func (e *kindError) Error() string { return e.err.Error() }

func (e *kindError) Unwrap() []error { return append([]error{e.err}, e.kinds...) }

// errorf formats an error (%w allowed) that also matches kind.
func errorf(kind error, format string, args ...any) error {
	return &kindError{kinds: []error{kind}, err: fmt.Errorf(format, args...)}
}

// metaMismatchf reports metadata whose length or hash differs from what the
// referring metadata recorded: a mismatch that means mix-and-match.
func metaMismatchf(format string, args ...any) error {
	return &kindError{kinds: []error{ErrMismatch, ErrMixAndMatch}, err: fmt.Errorf(format, args...)}
}
