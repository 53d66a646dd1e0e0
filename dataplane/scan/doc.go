// Package scan produces SBOMs and vulnerability reports for container
// images and directories, fully offline.
//
// It wraps syft (cataloguing) and grype (matching against a grype v6
// vulnerability database) as libraries. The only network traffic it ever
// makes is to the registry an image is pulled from and, in MirrorDB, to the
// mirror URL the caller names: syft's remote licence/POM lookups are turned
// off and grype's update check against anchore's servers is never used.
//
// The database is imported from an archive (ImportDB) or a latest.json
// mirror (MirrorDB) into a directory and opened with OpenDB. Grype's
// max-age check is disabled: in an air-gapped cluster the database is only
// as fresh as the last import, and refusing to scan with a week-old DB
// would turn a stale-data warning into an outage. Reports carry DBBuilt so
// callers can apply their own freshness policy.
//
// This package is heavy (~100 MB of dependencies); code that only reads
// results or evaluates policy should import dataplane/scan/report instead.
package scan
