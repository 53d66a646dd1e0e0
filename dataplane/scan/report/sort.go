package report

import (
	"cmp"
	"slices"
)

// CompareFindings orders findings most severe first, then by ID, package,
// version and location, so reports and messages are deterministic.
func CompareFindings(a, b Finding) int {
	return cmp.Or(
		cmp.Compare(b.Severity, a.Severity),
		cmp.Compare(a.ID, b.ID),
		cmp.Compare(a.Package, b.Package),
		cmp.Compare(a.Version, b.Version),
		cmp.Compare(a.Location, b.Location),
	)
}

// SortFindings sorts in place with CompareFindings.
func SortFindings(fs []Finding) { slices.SortStableFunc(fs, CompareFindings) }
