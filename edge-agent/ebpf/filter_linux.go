//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Filter is the eBPF filter attached to one interface (TCX ingress and
// egress). It is safe for concurrent use.
type Filter struct {
	mu     sync.Mutex
	iface  string
	objs   filterObjects
	links  []link.Link
	ncpu   int
	active uint32             // rule set (0 or 1) the programs evaluate
	names  []string           // names of the rules in the active set, by slot
	carry  map[string]Counter // hits of rules from earlier rule sets
	closed bool
}

// Attach loads the program and attaches it to iface on ingress and egress
// with TCX links (Linux 6.6+). Errors for which this host cannot run the
// filter (no privileges, no BPF/TCX support, verifier rejection, with a
// log excerpt) wrap ErrUnsupported; invalid rules or a missing interface
// do not.
func Attach(iface string, rules []Rule) (*Filter, error) {
	if err := ValidateRules(rules); err != nil {
		return nil, fmt.Errorf("ebpf: invalid rules: %w", err)
	}
	ifc, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("ebpf: interface %q: %w", iface, err)
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, unsupported("ebpf: reading possible CPUs", err)
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK. A failure
	// here shows up, classified, when loading below.
	_ = rlimit.RemoveMemlock()

	f := &Filter{iface: iface, ncpu: ncpu, carry: make(map[string]Counter)}
	if err := loadFilterObjects(&f.objs, nil); err != nil {
		return nil, classify("ebpf: loading filter program", err)
	}
	if err := f.init(rules); err != nil {
		_ = f.objs.Close()
		return nil, err
	}
	for _, a := range []struct {
		prog *ebpf.Program
		typ  ebpf.AttachType
		name string
	}{
		{f.objs.FilterIngress, ebpf.AttachTCXIngress, "ingress"},
		{f.objs.FilterEgress, ebpf.AttachTCXEgress, "egress"},
	} {
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifc.Index, Program: a.prog, Attach: a.typ})
		if err != nil {
			_ = f.Close()
			return nil, classify(fmt.Sprintf("ebpf: attaching TCX %s on %s", a.name, iface), err)
		}
		f.links = append(f.links, l)
	}
	return f, nil
}

// init creates the overflow traffic keys and writes the first rule set
// (set 0, already active) before the programs are attached.
func (f *Filter) init(rules []Rule) error {
	zero := make([]filterCounter, f.ncpu)
	for _, dir := range []Direction{Ingress, Egress} {
		for proto := uint8(0); proto <= uint8(ICMP); proto++ {
			k := filterTrafficKey{Direction: uint8(dir), Protocol: proto}
			if err := f.objs.Traffic.Update(&k, zero, ebpf.UpdateNoExist); err != nil {
				return fmt.Errorf("ebpf: creating overflow counter: %w", err)
			}
		}
	}
	if err := f.writeSet(0, rules); err != nil {
		return err
	}
	f.active = 0
	f.names = ruleNames(rules)
	return nil
}

// SetRules atomically replaces the rules: the new rules are written to the
// inactive rule set, which then becomes active with one map update.
func (f *Filter) SetRules(rules []Rule) error {
	if err := ValidateRules(rules); err != nil {
		return fmt.Errorf("ebpf: invalid rules: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("ebpf: filter is closed")
	}
	next := 1 - f.active
	if err := f.writeSet(next, rules); err != nil {
		return err
	}
	key := uint32(0)
	if err := f.objs.ActiveSet.Put(&key, &next); err != nil {
		return fmt.Errorf("ebpf: activating rule set: %w", err)
	}
	old, oldNames := f.active, f.names
	f.active, f.names = next, ruleNames(rules)
	// Carry the old set's hits over so per-name counters stay monotonic.
	var errs []error
	for i, name := range oldNames {
		c, err := f.hits(old, i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f.carry[name] = add(f.carry[name], c)
	}
	if len(errs) > 0 {
		return fmt.Errorf("ebpf: rules replaced, but reading old hit counters failed: %w", errors.Join(errs...))
	}
	return nil
}

func (f *Filter) writeSet(set uint32, rules []Rule) error {
	zero := make([]filterCounter, f.ncpu)
	base := set * MaxRules
	for i, r := range rules {
		idx := base + uint32(i)
		br := toBPFRule(r)
		if err := f.objs.Rules.Put(&idx, &br); err != nil {
			return fmt.Errorf("ebpf: writing rule %q: %w", r.Name, err)
		}
		if err := f.objs.RuleHits.Put(&idx, zero); err != nil {
			return fmt.Errorf("ebpf: resetting hits of rule %q: %w", r.Name, err)
		}
	}
	if len(rules) < MaxRules {
		idx := base + uint32(len(rules))
		var end filterRule // enabled == 0 terminates the set
		if err := f.objs.Rules.Put(&idx, &end); err != nil {
			return fmt.Errorf("ebpf: terminating rule set: %w", err)
		}
	}
	return nil
}

func toBPFRule(r Rule) filterRule {
	br := filterRule{
		Enabled:   1,
		Action:    uint8(r.Action),
		Direction: uint8(r.Direction),
		Protocol:  uint8(r.Protocol),
		Port:      r.Port,
	}
	if r.CIDR.IsValid() {
		p := r.CIDR.Masked()
		a := p.Addr().As4()
		var m [4]byte
		binary.BigEndian.PutUint32(m[:], ^uint32(0)<<(32-p.Bits()))
		if p.Bits() == 0 {
			m = [4]byte{}
		}
		br.HasCidr = 1
		// The program compares raw (network order) header bytes loaded as
		// a native u32, so store the bytes the same way.
		br.Addr = binary.NativeEndian.Uint32(a[:])
		br.Mask = binary.NativeEndian.Uint32(m[:])
	}
	return br
}

func (f *Filter) hits(set uint32, slot int) (Counter, error) {
	idx := set*MaxRules + uint32(slot)
	var vals []filterCounter
	if err := f.objs.RuleHits.Lookup(&idx, &vals); err != nil {
		return Counter{}, fmt.Errorf("ebpf: reading rule hits: %w", err)
	}
	return sum(vals), nil
}

// Snapshot returns the cumulative counters since Attach, summed over CPUs.
func (f *Filter) Snapshot() (Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return Snapshot{}, errors.New("ebpf: filter is closed")
	}
	s := Snapshot{Traffic: make(map[Key]Counter), RuleHits: make(map[string]Counter, len(f.carry)+len(f.names))}
	var k filterTrafficKey
	var vals []filterCounter
	it := f.objs.Traffic.Iterate()
	for it.Next(&k, &vals) {
		c := sum(vals)
		if c == (Counter{}) {
			continue // pre-created overflow bucket, never hit
		}
		key := Key{Direction: Direction(k.Direction), Protocol: protoName(k.Protocol), Port: k.Port}
		s.Traffic[key] = add(s.Traffic[key], c)
	}
	if err := it.Err(); err != nil {
		return Snapshot{}, fmt.Errorf("ebpf: reading traffic counters: %w", err)
	}
	for name, c := range f.carry {
		s.RuleHits[name] = c
	}
	for i, name := range f.names {
		c, err := f.hits(f.active, i)
		if err != nil {
			return Snapshot{}, err
		}
		s.RuleHits[name] = add(s.RuleHits[name], c)
	}
	return s, nil
}

// Close detaches the program and frees its maps. It is idempotent.
func (f *Filter) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	var errs []error
	for _, l := range f.links {
		if err := l.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	f.links = nil
	if err := f.objs.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func ruleNames(rules []Rule) []string {
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.Name
	}
	return names
}

func protoName(p uint8) string {
	switch Protocol(p) {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case ICMP:
		return "icmp"
	}
	return "other"
}

func sum(vals []filterCounter) Counter {
	var c Counter
	for _, v := range vals {
		c.Packets += v.Packets
		c.Bytes += v.Bytes
	}
	return c
}

func add(a, b Counter) Counter {
	return Counter{Packets: a.Packets + b.Packets, Bytes: a.Bytes + b.Bytes}
}

// classify wraps err with ErrUnsupported when it means this host cannot
// run the filter: missing privileges, a kernel without the needed BPF
// features (TCX, map or program types), or a verifier rejection (whose
// log tail is included).
func classify(what string, err error) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.As(err, &ve):
		excerpt := fmt.Sprintf("%-20v", ve) // last 20 lines of the verifier log
		return fmt.Errorf("%w: %s: verifier rejected the program: %w\n%s", ErrUnsupported, what, err, excerpt)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%w: %s: kernel lacks a needed feature (TCX needs Linux 6.6+): %w", ErrUnsupported, what, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: %s: permission denied (needs root or CAP_BPF+CAP_NET_ADMIN): %w", ErrUnsupported, what, err)
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("%w: %s: bpf() not available in this kernel: %w", ErrUnsupported, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func unsupported(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnsupported, what, err)
}
