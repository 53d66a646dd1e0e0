package report

import (
	"fmt"
	"strings"
	"time"
)

// Policy decides which findings block (e.g. an image from being deployed).
type Policy struct {
	// FailOn is the lowest severity that blocks. The zero value, Unknown,
	// means never block: an unset policy must not stop deployments.
	FailOn Severity `json:"failOn,omitempty"`
	// Ignore lists accepted risks by vulnerability ID.
	Ignore []Ignore `json:"ignore,omitempty"`
}

// Ignore accepts one vulnerability ID, optionally only until a date so that
// accepted risks are revisited rather than forgotten.
type Ignore struct {
	ID     string     `json:"id"`
	Reason string     `json:"reason,omitempty"`
	Until  *time.Time `json:"until,omitempty"`
}

// expired reports whether the entry's Until has passed at now.
func (i Ignore) expired(now time.Time) bool {
	return i.Until != nil && now.After(*i.Until)
}

// Verdict is the result of applying a Policy to a Report.
type Verdict struct {
	Blocked bool `json:"blocked"`
	// FailOn is the threshold that was applied, kept for messages.
	FailOn Severity `json:"failOn"`
	// Blocking are the findings at or above FailOn that no live ignore entry
	// covers, most severe first.
	Blocking []Finding `json:"blocking,omitempty"`
	// Ignored are findings covered by a live ignore entry (whatever their
	// severity).
	Ignored []Finding `json:"ignored,omitempty"`
	// Expired are ignore entries whose Until has passed; they no longer
	// ignore anything and are reported so someone renews or drops them.
	Expired []Ignore `json:"expired,omitempty"`
}

// Evaluate applies p to r at time now. It is pure: the same inputs always
// give the same verdict, which keeps admission decisions reproducible.
func Evaluate(r Report, p Policy, now time.Time) Verdict {
	v := Verdict{FailOn: p.FailOn}
	live := make(map[string]bool, len(p.Ignore))
	for _, ig := range p.Ignore {
		if ig.expired(now) {
			v.Expired = append(v.Expired, ig)
			continue
		}
		live[strings.ToUpper(strings.TrimSpace(ig.ID))] = true
	}
	for _, f := range r.Findings {
		switch {
		case live[strings.ToUpper(f.ID)]:
			v.Ignored = append(v.Ignored, f)
		case p.FailOn != Unknown && f.Severity.AtLeast(p.FailOn):
			v.Blocking = append(v.Blocking, f)
		}
	}
	SortFindings(v.Blocking)
	SortFindings(v.Ignored)
	v.Blocked = len(v.Blocking) > 0
	return v
}

// Summary is a one-line human message naming up to limit blocking findings
// (limit <= 0 names them all), e.g.
//
//	2 findings at or above High: CVE-2099-0001 (High) in musl 1.2.3-r0, fixed in 1.2.5-r0; and 1 more
func (v Verdict) Summary(limit int) string {
	var b strings.Builder
	if !v.Blocked {
		if v.FailOn == Unknown {
			b.WriteString("not blocked: policy has no failOn threshold")
		} else {
			fmt.Fprintf(&b, "no findings at or above %s", v.FailOn)
		}
	} else {
		fmt.Fprintf(&b, "%s at or above %s: ", plural(len(v.Blocking), "finding"), v.FailOn)
		n := len(v.Blocking)
		if limit > 0 && limit < n {
			n = limit
		}
		parts := make([]string, 0, n+1)
		for _, f := range v.Blocking[:n] {
			parts = append(parts, describe(f))
		}
		if rest := len(v.Blocking) - n; rest > 0 {
			parts = append(parts, fmt.Sprintf("and %d more", rest))
		}
		b.WriteString(strings.Join(parts, "; "))
	}
	var notes []string
	if len(v.Ignored) > 0 {
		notes = append(notes, fmt.Sprintf("%d ignored", len(v.Ignored)))
	}
	if len(v.Expired) > 0 {
		ids := make([]string, len(v.Expired))
		for i, e := range v.Expired {
			ids[i] = e.ID
		}
		notes = append(notes, fmt.Sprintf("expired ignores: %s", strings.Join(ids, ", ")))
	}
	if len(notes) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(notes, "; "))
	}
	return b.String()
}

func describe(f Finding) string {
	s := fmt.Sprintf("%s (%s) in %s %s", f.ID, f.Severity, f.Package, f.Version)
	if len(f.FixedIn) > 0 {
		s += ", fixed in " + strings.Join(f.FixedIn, ", ")
	} else {
		s += ", no fix available"
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
