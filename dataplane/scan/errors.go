package scan

import "errors"

// Sentinel errors, matched with errors.Is, for the failures a caller
// reacts to differently (ask an operator to import a DB, fix a reference,
// fix credentials).
var (
	// ErrNoDB means the database directory holds no imported grype v6 DB.
	ErrNoDB = errors.New("no vulnerability database imported")
	// ErrImageNotFound means the registry answered that the repository or
	// tag/digest does not exist.
	ErrImageNotFound = errors.New("image not found")
	// ErrUnauthorized means the registry refused the credentials (or asked
	// for some and none were given).
	ErrUnauthorized = errors.New("registry authentication failed")
	// ErrInvalidSBOM means a document given as an SBOM cannot be read as
	// one (a problem of the document, not of the scanner).
	ErrInvalidSBOM = errors.New("invalid SBOM")
	// ErrChecksumMismatch means a mirrored DB archive did not match the
	// checksum its latest.json advertised.
	ErrChecksumMismatch = errors.New("vulnerability database archive checksum mismatch")
)
