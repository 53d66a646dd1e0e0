package rollout

import (
	"fmt"
	"slices"
	"time"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
)

// Window is a parsed maintenance window.
type Window struct {
	start    time.Duration // after midnight, local time
	duration time.Duration
	loc      *time.Location
	days     []time.Weekday // empty: every day
}

var weekdays = map[edgev1alpha1.Weekday]time.Weekday{
	"Sun": time.Sunday, "Mon": time.Monday, "Tue": time.Tuesday, "Wed": time.Wednesday,
	"Thu": time.Thursday, "Fri": time.Friday, "Sat": time.Saturday,
}

// ParseWindow reads the spec's window; nil means always open.
func ParseWindow(w *edgev1alpha1.MaintenanceWindow) (*Window, error) {
	if w == nil {
		return nil, nil
	}
	var h, m int
	if _, err := fmt.Sscanf(w.Start, "%d:%d", &h, &m); err != nil {
		return nil, fmt.Errorf("maintenanceWindow.start %q: want HH:MM", w.Start)
	}
	d, err := time.ParseDuration(string(w.Duration))
	if err != nil || d <= 0 {
		return nil, fmt.Errorf("maintenanceWindow.duration %q: want a positive duration", w.Duration)
	}
	tz := w.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("maintenanceWindow.timeZone %q is not an IANA time zone", tz)
	}
	win := &Window{start: time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, duration: d, loc: loc}
	for _, day := range w.Days {
		win.days = append(win.days, weekdays[day])
	}
	return win, nil
}

// openings are the windows that start on the local day of t and the day
// before (a window may run past midnight), as [start, end) instants.
func (w *Window) openingAround(t time.Time, dayOffset int) (time.Time, time.Time, bool) {
	local := t.In(w.loc)
	y, mo, d := local.Date()
	midnight := time.Date(y, mo, d+dayOffset, 0, 0, 0, 0, w.loc)
	if len(w.days) > 0 && !slices.Contains(w.days, midnight.Weekday()) {
		return time.Time{}, time.Time{}, false
	}
	// Add the clock time as wall-clock hours so that a DST change on that
	// day moves the instant, not the time of day.
	h, m := int(w.start/time.Hour), int(w.start%time.Hour/time.Minute)
	start := time.Date(y, mo, d+dayOffset, h, m, 0, 0, w.loc)
	return start, start.Add(w.duration), true
}

// Open tells whether t is inside the window; a nil window is always open.
func (w *Window) Open(t time.Time) bool {
	if w == nil {
		return true
	}
	for off := -1; off <= 0; off++ {
		if s, e, ok := w.openingAround(t, off); ok && !t.Before(s) && t.Before(e) {
			return true
		}
	}
	return false
}

// Next is the start of the next opening after t (within eight days).
func (w *Window) Next(t time.Time) time.Time {
	for off := 0; off <= 8; off++ {
		if s, _, ok := w.openingAround(t, off); ok && s.After(t) {
			return s
		}
	}
	return t.Add(24 * time.Hour)
}
