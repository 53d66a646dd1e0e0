package report

import (
	"encoding/json"
	"testing"
)

func TestParseSeverity(t *testing.T) {
	tests := []struct {
		in      string
		want    Severity
		wantErr bool
	}{
		{"", Unknown, false},
		{"unknown", Unknown, false},
		{"Negligible", Negligible, false},
		{"low", Low, false},
		{"MEDIUM", Medium, false},
		{" High ", High, false},
		{"critical", Critical, false},
		{"severe", Unknown, true},
	}
	for _, tt := range tests {
		got, err := ParseSeverity(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSeverity(%q) = %v, %v; want %v, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSeverityOrder(t *testing.T) {
	order := []Severity{Unknown, Negligible, Low, Medium, High, Critical}
	for i := 1; i < len(order); i++ {
		if !order[i].AtLeast(order[i-1]) || order[i-1].AtLeast(order[i]) {
			t.Errorf("%v should rank strictly above %v", order[i], order[i-1])
		}
	}
}

func TestSeverityJSON(t *testing.T) {
	b, err := json.Marshal(Finding{ID: "CVE-1", Severity: High})
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["severity"] != "High" {
		t.Fatalf("severity encoded as %v, want \"High\"", raw["severity"])
	}
	var f Finding
	if err := json.Unmarshal([]byte(`{"severity":"critical"}`), &f); err != nil || f.Severity != Critical {
		t.Fatalf("decode lower-case: %v %v", f.Severity, err)
	}
	if err := json.Unmarshal([]byte(`{"severity":"bogus"}`), &f); err == nil {
		t.Fatal("want error for unknown severity")
	}
	if _, err := json.Marshal(Severity(42)); err == nil {
		t.Fatal("want error marshalling out-of-range severity")
	}
}
