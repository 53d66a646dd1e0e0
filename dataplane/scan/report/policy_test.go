package report

import (
	"reflect"
	"testing"
	"time"
)

func finding(id string, sev Severity, pkg, ver string, fixed ...string) Finding {
	return Finding{ID: id, Severity: sev, Package: pkg, Version: ver, Type: "apk", FixedIn: fixed}
}

func ids(fs []Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.ID)
	}
	return out
}

func TestEvaluate(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	r := Report{Findings: []Finding{
		finding("CVE-2099-0003", Medium, "zlib", "1.3-r0", "1.3.1-r0"),
		finding("CVE-2099-0001", High, "musl", "1.2.3-r0", "1.2.5-r0"),
		finding("CVE-2099-0002", Critical, "openssl", "3.0.0-r0"),
		finding("CVE-2099-0004", Unknown, "busybox", "1.36.1-r0"),
	}}
	tests := []struct {
		name         string
		policy       Policy
		wantBlocked  bool
		wantBlocking []string
		wantIgnored  []string
		wantExpired  []string
	}{
		{
			name:         "zero policy never blocks",
			policy:       Policy{},
			wantBlocking: []string{},
			wantIgnored:  []string{},
		},
		{
			name:         "high blocks high and critical, most severe first",
			policy:       Policy{FailOn: High},
			wantBlocked:  true,
			wantBlocking: []string{"CVE-2099-0002", "CVE-2099-0001"},
			wantIgnored:  []string{},
		},
		{
			name:         "negligible does not block unknown severity",
			policy:       Policy{FailOn: Negligible},
			wantBlocked:  true,
			wantBlocking: []string{"CVE-2099-0002", "CVE-2099-0001", "CVE-2099-0003"},
			wantIgnored:  []string{},
		},
		{
			name: "live ignores remove findings, case-insensitively",
			policy: Policy{FailOn: High, Ignore: []Ignore{
				{ID: "cve-2099-0002", Reason: "not reachable"},
				{ID: "CVE-2099-0001", Until: &future},
			}},
			wantBlocked:  false,
			wantBlocking: []string{},
			wantIgnored:  []string{"CVE-2099-0002", "CVE-2099-0001"},
		},
		{
			name: "expired ignore no longer ignores and is reported",
			policy: Policy{FailOn: High, Ignore: []Ignore{
				{ID: "CVE-2099-0001", Until: &past},
				{ID: "CVE-2099-0002"},
			}},
			wantBlocked:  true,
			wantBlocking: []string{"CVE-2099-0001"},
			wantIgnored:  []string{"CVE-2099-0002"},
			wantExpired:  []string{"CVE-2099-0001"},
		},
		{
			name:         "ignore below threshold still listed as ignored",
			policy:       Policy{FailOn: Critical, Ignore: []Ignore{{ID: "CVE-2099-0003"}}},
			wantBlocked:  true,
			wantBlocking: []string{"CVE-2099-0002"},
			wantIgnored:  []string{"CVE-2099-0003"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Evaluate(r, tt.policy, now)
			if v.Blocked != tt.wantBlocked {
				t.Errorf("Blocked = %v, want %v", v.Blocked, tt.wantBlocked)
			}
			if got := ids(v.Blocking); !reflect.DeepEqual(got, tt.wantBlocking) {
				t.Errorf("Blocking = %v, want %v", got, tt.wantBlocking)
			}
			if got := ids(v.Ignored); !reflect.DeepEqual(got, tt.wantIgnored) {
				t.Errorf("Ignored = %v, want %v", got, tt.wantIgnored)
			}
			var exp []string
			for _, e := range v.Expired {
				exp = append(exp, e.ID)
			}
			if !reflect.DeepEqual(exp, tt.wantExpired) {
				t.Errorf("Expired = %v, want %v", exp, tt.wantExpired)
			}
		})
	}
}

func TestEvaluateIgnoreUntilBoundary(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r := Report{Findings: []Finding{finding("CVE-1", High, "p", "1")}}
	v := Evaluate(r, Policy{FailOn: High, Ignore: []Ignore{{ID: "CVE-1", Until: &now}}}, now)
	if v.Blocked || len(v.Expired) != 0 {
		t.Fatalf("an ignore is still live at exactly Until: %+v", v)
	}
}

func TestSummary(t *testing.T) {
	now := time.Now()
	past := now.Add(-time.Hour)
	many := Report{Findings: []Finding{
		finding("CVE-2099-0001", High, "musl", "1.2.3-r0", "1.2.5-r0"),
		finding("CVE-2099-0002", Critical, "openssl", "3.0.0-r0"),
		finding("CVE-2099-0005", High, "zlib", "1.3-r0", "1.3.1-r0", "1.4-r0"),
	}}
	tests := []struct {
		name   string
		r      Report
		policy Policy
		max    int
		want   string
	}{
		{
			name:   "truncated",
			r:      many,
			policy: Policy{FailOn: High},
			max:    2,
			want:   "3 findings at or above High: CVE-2099-0002 (Critical) in openssl 3.0.0-r0, no fix available; CVE-2099-0001 (High) in musl 1.2.3-r0, fixed in 1.2.5-r0; and 1 more",
		},
		{
			name:   "all with max 0",
			r:      many,
			policy: Policy{FailOn: Critical},
			max:    0,
			want:   "1 finding at or above Critical: CVE-2099-0002 (Critical) in openssl 3.0.0-r0, no fix available",
		},
		{
			name:   "multiple fixes",
			r:      Report{Findings: many.Findings[2:]},
			policy: Policy{FailOn: Low},
			max:    5,
			want:   "1 finding at or above Low: CVE-2099-0005 (High) in zlib 1.3-r0, fixed in 1.3.1-r0, 1.4-r0",
		},
		{
			name:   "clean",
			r:      Report{},
			policy: Policy{FailOn: High},
			max:    3,
			want:   "no findings at or above High",
		},
		{
			name:   "no threshold",
			r:      many,
			policy: Policy{},
			max:    3,
			want:   "not blocked: policy has no failOn threshold",
		},
		{
			name: "notes ignored and expired",
			r:    many,
			policy: Policy{FailOn: Critical, Ignore: []Ignore{
				{ID: "CVE-2099-0002"}, {ID: "CVE-2000-1", Until: &past},
			}},
			max:  3,
			want: "no findings at or above Critical (1 ignored; expired ignores: CVE-2000-1)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Evaluate(tt.r, tt.policy, now).Summary(tt.max); got != tt.want {
				t.Errorf("Summary =\n %q\nwant\n %q", got, tt.want)
			}
		})
	}
}

func TestSortFindingsDeterministic(t *testing.T) {
	fs := []Finding{
		finding("CVE-2", High, "b", "1"),
		finding("CVE-1", Low, "a", "1"),
		finding("CVE-2", High, "a", "1"),
		finding("CVE-1", High, "z", "1"),
	}
	SortFindings(fs)
	got := []string{}
	for _, f := range fs {
		got = append(got, f.ID+"/"+f.Package)
	}
	want := []string{"CVE-1/z", "CVE-2/a", "CVE-2/b", "CVE-1/a"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
}
