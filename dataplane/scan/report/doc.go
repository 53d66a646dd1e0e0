// Package report holds the scanner's result types and the pure policy
// evaluation over them.
//
// It is deliberately stdlib-only: the manager imports it to read and judge
// scan results, and must never pull in syft, grype or stereoscope (which
// add ~100 MB and minutes of build time). The heavy scanning lives in the
// parent package dataplane/scan.
package report
