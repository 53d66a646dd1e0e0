// Package scantest builds real fixtures for scanner tests: OCI images with
// an Alpine apk database and a Go binary, an in-process registry, grype v6
// vulnerability databases with planted CVEs, DB archives and a latest.json
// mirror. Nothing here is a mock; every fixture is read by the same syft
// and grype code paths as production input.
package scantest
