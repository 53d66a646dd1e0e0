package ebpf

import (
	"errors"
	"fmt"
	"net/netip"
)

// MaxRules is the maximum number of rules a Filter holds (the size of one
// rule set in the BPF rules map).
const MaxRules = 64

// MaxTrafficKeys is the capacity of the per-CPU traffic counter map.
const MaxTrafficKeys = 4096

// ErrUnsupported is wrapped by errors for which this host cannot run the
// eBPF filter (missing privileges, kernel lacks BPF/TCX/BTF support,
// verifier rejection). The agent should keep running without eBPF.
var ErrUnsupported = errors.New("ebpf filter unsupported on this host")

// Direction is a traffic direction. In a Rule it selects which directions
// the rule applies to; in a Key it is Ingress or Egress.
type Direction uint8

// Directions. The values are a bit mask (Both = Ingress|Egress) and are
// shared with the BPF program; the zero value is not a valid direction.
const (
	Ingress Direction = 1
	Egress  Direction = 2
	Both    Direction = Ingress | Egress
)

func (d Direction) String() string {
	switch d {
	case Ingress:
		return "ingress"
	case Egress:
		return "egress"
	case Both:
		return "both"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// Protocol is the L4 protocol a Rule matches. Any (the zero value) matches
// every packet, including non-IP ones.
type Protocol uint8

// Protocols (values shared with the BPF program).
const (
	Any  Protocol = 0
	TCP  Protocol = 1
	UDP  Protocol = 2
	ICMP Protocol = 3 // ICMP and ICMPv6
)

func (p Protocol) String() string {
	switch p {
	case Any:
		return "any"
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case ICMP:
		return "icmp"
	}
	return fmt.Sprintf("protocol(%d)", uint8(p))
}

// Action is what a matching Rule does.
type Action uint8

// Actions (values shared with the BPF program).
const (
	// Drop counts the hit and drops the packet; evaluation stops.
	Drop Action = 0
	// Count counts the hit; evaluation continues with the next rule.
	Count Action = 1
)

func (a Action) String() string {
	switch a {
	case Drop:
		return "drop"
	case Count:
		return "count"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Rule is one filter rule. Rules are evaluated in order; every matching
// rule's hit counter rises, and the first matching Drop rule drops the
// packet.
type Rule struct {
	Name      string
	Action    Action
	Direction Direction
	Protocol  Protocol
	// Port is the destination port (TCP/UDP only); 0 matches any port.
	Port uint16
	// CIDR matches the remote IPv4 address (source on ingress, destination
	// on egress). The zero (invalid) prefix matches any address, including
	// IPv6; a valid prefix never matches IPv6 or non-IP packets.
	CIDR netip.Prefix
}

// Key identifies one traffic counter.
type Key struct {
	Direction Direction // Ingress or Egress
	Protocol  string    // "tcp", "udp", "icmp" or "other"
	// Port is the destination port for TCP/UDP; 0 for ICMP/other, for
	// non-first IP fragments, and for the overflow bucket used once the
	// traffic map is full.
	Port uint16
}

// Counter is a packet and byte count.
type Counter struct {
	Packets, Bytes uint64
}

// Snapshot holds cumulative counters since Attach.
type Snapshot struct {
	Traffic map[Key]Counter
	// RuleHits is keyed by rule name. It holds every rule name used since
	// Attach: hits survive SetRules for a rule that keeps its name.
	RuleHits map[string]Counter
}

// ValidateRules checks rules without touching the kernel: names are
// non-empty and unique, at most MaxRules rules, known action, direction and
// protocol, a port only with TCP or UDP, and a CIDR (if set) is IPv4.
func ValidateRules(rules []Rule) error {
	if len(rules) > MaxRules {
		return fmt.Errorf("too many rules: %d (max %d)", len(rules), MaxRules)
	}
	seen := make(map[string]int, len(rules))
	var errs []error
	for i, r := range rules {
		where := fmt.Sprintf("rule %d (%q)", i, r.Name)
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("rule %d: name must not be empty", i))
		} else if j, dup := seen[r.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: duplicate name, also used by rule %d", where, j))
		} else {
			seen[r.Name] = i
		}
		if r.Action != Drop && r.Action != Count {
			errs = append(errs, fmt.Errorf("%s: unknown action %d (want Drop or Count)", where, r.Action))
		}
		if r.Direction != Ingress && r.Direction != Egress && r.Direction != Both {
			errs = append(errs, fmt.Errorf("%s: unknown direction %d (want Ingress, Egress or Both)", where, r.Direction))
		}
		switch r.Protocol {
		case Any, TCP, UDP, ICMP:
		default:
			errs = append(errs, fmt.Errorf("%s: unknown protocol %d (want Any, TCP, UDP or ICMP)", where, r.Protocol))
		}
		if r.Port != 0 && r.Protocol != TCP && r.Protocol != UDP {
			errs = append(errs, fmt.Errorf("%s: port %d needs protocol TCP or UDP, not %s", where, r.Port, r.Protocol))
		}
		if r.CIDR.IsValid() && !r.CIDR.Addr().Is4() {
			errs = append(errs, fmt.Errorf("%s: CIDR %s is not IPv4", where, r.CIDR))
		}
	}
	return errors.Join(errs...)
}

// Delta returns the counters accumulated between prev and cur (both from
// the same Filter). Entries absent from prev count from zero; entries with
// no change are omitted. A counter that went backwards (it cannot for one
// Filter, but prev may come from an earlier, closed one) yields cur's value.
func Delta(prev, cur Snapshot) Snapshot {
	out := Snapshot{
		Traffic:  make(map[Key]Counter),
		RuleHits: make(map[string]Counter),
	}
	for k, c := range cur.Traffic {
		if d, ok := sub(c, prev.Traffic[k]); ok {
			out.Traffic[k] = d
		}
	}
	for k, c := range cur.RuleHits {
		if d, ok := sub(c, prev.RuleHits[k]); ok {
			out.RuleHits[k] = d
		}
	}
	return out
}

func sub(cur, prev Counter) (Counter, bool) {
	if cur.Packets < prev.Packets || cur.Bytes < prev.Bytes {
		return cur, cur != Counter{}
	}
	d := Counter{Packets: cur.Packets - prev.Packets, Bytes: cur.Bytes - prev.Bytes}
	return d, d != Counter{}
}
