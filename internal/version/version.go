// Package version holds the build's version, stamped by the Makefile with
// -ldflags "-X".
package version

// Set at link time; the defaults mark a plain `go build`.
var (
	Version = "dev"
	Commit  = "unknown"
	Date    = "unknown"
)
