package ebpf

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestValidateRules(t *testing.T) {
	ok := []Rule{
		{Name: "drop-dns", Action: Drop, Direction: Ingress, Protocol: UDP, Port: 53},
		{Name: "count-ssh", Action: Count, Direction: Both, Protocol: TCP, Port: 22, CIDR: netip.MustParsePrefix("198.18.0.0/15")},
		{Name: "drop-icmp", Action: Drop, Direction: Egress, Protocol: ICMP},
		{Name: "all", Action: Count, Direction: Both},
	}
	if err := ValidateRules(ok); err != nil {
		t.Fatalf("valid rules rejected: %v", err)
	}
	if err := ValidateRules(nil); err != nil {
		t.Fatalf("no rules rejected: %v", err)
	}

	max := make([]Rule, MaxRules)
	for i := range max {
		max[i] = Rule{Name: fmt.Sprintf("r%d", i), Direction: Both}
	}
	if err := ValidateRules(max); err != nil {
		t.Fatalf("%d rules rejected: %v", MaxRules, err)
	}

	tests := []struct {
		name  string
		rules []Rule
		want  string
	}{
		{"too many", append(max, Rule{Name: "one-more", Direction: Both}), "too many rules: 65 (max 64)"},
		{"empty name", []Rule{{Direction: Both}}, "name must not be empty"},
		{"duplicate", []Rule{{Name: "a", Direction: Both}, {Name: "a", Direction: Ingress}}, `rule 1 ("a"): duplicate name, also used by rule 0`},
		{"zero direction", []Rule{{Name: "a"}}, "unknown direction 0"},
		{"bad direction", []Rule{{Name: "a", Direction: 7}}, "unknown direction 7"},
		{"bad action", []Rule{{Name: "a", Direction: Both, Action: 9}}, "unknown action 9"},
		{"bad protocol", []Rule{{Name: "a", Direction: Both, Protocol: 17}}, "unknown protocol 17"},
		{"port without protocol", []Rule{{Name: "a", Direction: Both, Port: 80}}, "port 80 needs protocol TCP or UDP, not any"},
		{"port with icmp", []Rule{{Name: "a", Direction: Both, Protocol: ICMP, Port: 1}}, "port 1 needs protocol TCP or UDP, not icmp"},
		{"ipv6 cidr", []Rule{{Name: "a", Direction: Both, CIDR: netip.MustParsePrefix("2001:db8::/32")}}, "CIDR 2001:db8::/32 is not IPv4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateRules(tc.rules)
			if err == nil {
				t.Fatalf("want error containing %q, got nil", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %q", tc.want, err)
			}
		})
	}

	// All problems are reported at once.
	err := ValidateRules([]Rule{{Name: "", Direction: 0, Port: 5}})
	for _, want := range []string{"name must not be empty", "unknown direction", "needs protocol"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want error containing %q, got %v", want, err)
		}
	}
}

func TestDelta(t *testing.T) {
	udp53 := Key{Direction: Ingress, Protocol: "udp", Port: 53}
	tcp22 := Key{Direction: Egress, Protocol: "tcp", Port: 22}
	icmp := Key{Direction: Ingress, Protocol: "icmp"}
	prev := Snapshot{
		Traffic: map[Key]Counter{
			udp53: {Packets: 10, Bytes: 1000},
			tcp22: {Packets: 5, Bytes: 500},
			icmp:  {Packets: 1, Bytes: 84},
		},
		RuleHits: map[string]Counter{"a": {Packets: 2, Bytes: 200}, "gone": {Packets: 1, Bytes: 1}},
	}
	cur := Snapshot{
		Traffic: map[Key]Counter{
			udp53:                                  {Packets: 15, Bytes: 1600},
			tcp22:                                  {Packets: 5, Bytes: 500}, // unchanged: omitted
			icmp:                                   {Packets: 0, Bytes: 0},   // went backwards (new filter): cur value, zero omitted
			{Direction: Egress, Protocol: "other"}: {Packets: 3, Bytes: 180}, // new key
		},
		RuleHits: map[string]Counter{"a": {Packets: 3, Bytes: 300}, "new": {Packets: 4, Bytes: 40}},
	}
	want := Snapshot{
		Traffic: map[Key]Counter{
			udp53:                                  {Packets: 5, Bytes: 600},
			{Direction: Egress, Protocol: "other"}: {Packets: 3, Bytes: 180},
		},
		RuleHits: map[string]Counter{"a": {Packets: 1, Bytes: 100}, "new": {Packets: 4, Bytes: 40}},
	}
	if got := Delta(prev, cur); !reflect.DeepEqual(got, want) {
		t.Fatalf("Delta:\n got %+v\nwant %+v", got, want)
	}

	// A zero prev gives cur back; maps are never nil.
	got := Delta(Snapshot{}, cur)
	if len(got.Traffic) != 3 || got.Traffic[udp53] != cur.Traffic[udp53] || got.RuleHits["new"] != cur.RuleHits["new"] {
		t.Fatalf("Delta from zero: %+v", got)
	}
	empty := Delta(Snapshot{}, Snapshot{})
	if empty.Traffic == nil || empty.RuleHits == nil {
		t.Fatalf("Delta of empty snapshots has nil maps: %+v", empty)
	}

	// Counter backwards: cur value.
	back := Delta(Snapshot{Traffic: map[Key]Counter{udp53: {Packets: 100, Bytes: 9}}}, Snapshot{Traffic: map[Key]Counter{udp53: {Packets: 2, Bytes: 20}}})
	if back.Traffic[udp53] != (Counter{Packets: 2, Bytes: 20}) {
		t.Fatalf("Delta after reset: %+v", back)
	}
}

func TestStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Ingress.String(), "ingress"}, {Egress.String(), "egress"}, {Both.String(), "both"},
		{Any.String(), "any"}, {TCP.String(), "tcp"}, {UDP.String(), "udp"}, {ICMP.String(), "icmp"},
		{Drop.String(), "drop"}, {Count.String(), "count"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
