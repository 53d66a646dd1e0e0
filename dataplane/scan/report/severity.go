package report

import (
	"fmt"
	"strings"
)

// Severity is a vulnerability's qualitative severity. The zero value is
// Unknown, and the constants are ordered so that comparisons (>=) express
// "at least as bad as".
type Severity int

// Severities from least to most severe.
const (
	Unknown Severity = iota
	Negligible
	Low
	Medium
	High
	Critical
)

var severityNames = [...]string{
	Unknown:    "Unknown",
	Negligible: "Negligible",
	Low:        "Low",
	Medium:     "Medium",
	High:       "High",
	Critical:   "Critical",
}

// String returns the capitalised name ("High"), the form used in JSON and
// in human messages.
func (s Severity) String() string {
	if s < Unknown || int(s) >= len(severityNames) {
		return fmt.Sprintf("Severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity reads a severity name case-insensitively. The empty string
// is Unknown so that absent fields in config decode to "never block".
func ParseSeverity(s string) (Severity, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return Unknown, nil
	}
	for i, n := range severityNames {
		if strings.EqualFold(t, n) {
			return Severity(i), nil
		}
	}
	return Unknown, fmt.Errorf("unknown severity %q (want one of %s)", s, strings.Join(severityNames[:], ", "))
}

// AtLeast reports whether s is as severe as or more severe than threshold.
func (s Severity) AtLeast(threshold Severity) bool { return s >= threshold }

// MarshalText encodes the capitalised name, so JSON carries "High" rather
// than a number whose meaning depends on this package's constant order.
func (s Severity) MarshalText() ([]byte, error) {
	if s < Unknown || int(s) >= len(severityNames) {
		return nil, fmt.Errorf("invalid severity %d", int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText accepts any case of a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
