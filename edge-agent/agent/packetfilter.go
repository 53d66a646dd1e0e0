package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/cairn-platform/cairn/edge-agent/ebpf"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
)

// packetFilter runs the eBPF filter on Config.PacketFilterInterface with
// the rules the hub sends, and publishes its counters every
// Config.MetricsInterval. The agent works the same without it; the state
// heartbeat says why it is not active.
type packetFilter struct {
	a      *Agent
	filter *ebpf.Filter
	prev   ebpf.Snapshot
	// rules is the last rule set applied, to skip identical updates.
	rules string
}

// startPacketFilter attaches the filter, or records why it cannot.
func (a *Agent) startPacketFilter() *packetFilter {
	pf := &packetFilter{a: a}
	if a.cfg.PacketFilterInterface == "" {
		a.SetEBPF(protocol.EBPFState{Active: false, Reason: "packet filtering is off: the agent runs without --ebpf-interface"})
		return pf
	}
	rules, raw, err := a.packetFilterRules()
	if err != nil {
		a.log.Info("packet filter rules are invalid; attaching without rules", "error", err.Error())
		rules = nil
	}
	f, err := ebpf.Attach(a.cfg.PacketFilterInterface, rules)
	if err != nil {
		a.log.Info("eBPF packet filter not active; the agent keeps working without it", "interface", a.cfg.PacketFilterInterface, "error", err.Error())
		a.SetEBPF(protocol.EBPFState{Active: false, Reason: err.Error()})
		return pf
	}
	pf.filter, pf.rules = f, raw
	a.SetEBPF(protocol.EBPFState{Active: true})
	a.log.Info("eBPF packet filter attached", "interface", a.cfg.PacketFilterInterface, "rules", len(rules))
	return pf
}

// packetFilterRules reads the rules from the twin.
func (a *Agent) packetFilterRules() ([]ebpf.Rule, string, error) {
	a.mu.Lock()
	e, ok := a.state[protocol.PacketFiltersKey]
	a.mu.Unlock()
	if !ok || e.Deleted {
		return nil, "", nil
	}
	var wire []protocol.PacketFilter
	if err := json.Unmarshal(e.Value, &wire); err != nil {
		return nil, string(e.Value), fmt.Errorf("packet filters: %w", err)
	}
	rules, err := ToEBPFRules(wire)
	return rules, string(e.Value), err
}

// update applies new rules from the twin, if they changed.
func (pf *packetFilter) update() {
	if pf.filter == nil {
		return
	}
	rules, raw, err := pf.a.packetFilterRules()
	if raw == pf.rules {
		return
	}
	if err == nil {
		err = pf.filter.SetRules(rules)
	}
	if err != nil {
		pf.a.log.Info("packet filter rules not applied; the previous rules stay", "error", err.Error())
		pf.a.SetEBPF(protocol.EBPFState{Active: true, Reason: "rules not applied: " + err.Error()})
		return
	}
	pf.rules = raw
	pf.a.SetEBPF(protocol.EBPFState{Active: true})
	pf.a.log.Info("packet filter rules applied", "rules", len(rules))
}

// report publishes the counters since the previous report.
func (pf *packetFilter) report(ctx context.Context) {
	if pf.filter == nil {
		return
	}
	cur, err := pf.filter.Snapshot()
	if err != nil {
		pf.a.log.Info("reading packet counters failed", "error", err.Error())
		return
	}
	d := ebpf.Delta(pf.prev, cur)
	pf.prev = cur
	rep := protocol.MetricsReport{Time: pf.a.cfg.Now(), Rules: map[string]protocol.PacketCounter{}}
	for k, c := range d.Traffic {
		rep.Traffic = append(rep.Traffic, protocol.TrafficCount{
			Direction: k.Direction.String(), Protocol: k.Protocol, Port: k.Port,
			PacketCounter: protocol.PacketCounter{Packets: c.Packets, Bytes: c.Bytes},
		})
	}
	for name, c := range d.RuleHits {
		rep.Rules[name] = protocol.PacketCounter{Packets: c.Packets, Bytes: c.Bytes}
	}
	if len(rep.Traffic) == 0 && len(rep.Rules) == 0 {
		return
	}
	b, err := json.Marshal(rep)
	if err == nil {
		// Reports made offline wait in the on-disk outbox.
		pf.a.sendOrQueue(ctx, pf.a.cfg.Device.Topic(protocol.Metrics), b)
	}
}

func (pf *packetFilter) close() {
	if pf.filter != nil {
		if err := pf.filter.Close(); err != nil {
			pf.a.log.Info("detaching the packet filter", "error", err.Error())
		}
	}
}

// ToEBPFRules translates the hub's rules for the eBPF program; the error
// names the first rule it cannot run.
func ToEBPFRules(wire []protocol.PacketFilter) ([]ebpf.Rule, error) {
	rules := make([]ebpf.Rule, 0, len(wire))
	for _, w := range wire {
		r := ebpf.Rule{Name: w.Name, Port: uint16(max(w.Port, 0))}
		switch w.Action {
		case "Drop", "":
			r.Action = ebpf.Drop
		case "Count":
			r.Action = ebpf.Count
		default:
			return nil, fmt.Errorf("rule %q: unknown action %q", w.Name, w.Action)
		}
		switch w.Direction {
		case "Ingress", "":
			r.Direction = ebpf.Ingress
		case "Egress":
			r.Direction = ebpf.Egress
		default:
			return nil, fmt.Errorf("rule %q: unknown direction %q", w.Name, w.Direction)
		}
		switch w.Protocol {
		case "Any", "":
			r.Protocol = ebpf.Any
		case "TCP":
			r.Protocol = ebpf.TCP
		case "UDP":
			r.Protocol = ebpf.UDP
		case "ICMP":
			r.Protocol = ebpf.ICMP
		default:
			return nil, fmt.Errorf("rule %q: unknown protocol %q", w.Name, w.Protocol)
		}
		if w.CIDR != "" {
			p, err := netip.ParsePrefix(w.CIDR)
			if err != nil {
				return nil, fmt.Errorf("rule %q: %w", w.Name, err)
			}
			r.CIDR = p.Masked()
		}
		rules = append(rules, r)
	}
	if err := ebpf.ValidateRules(rules); err != nil {
		return nil, err
	}
	return rules, nil
}

// metricsTicker returns the metrics ticker channel, or nil without a filter.
func (pf *packetFilter) ticker(interval time.Duration) (<-chan time.Time, func()) {
	if pf.filter == nil {
		return nil, func() {}
	}
	t := time.NewTicker(interval)
	return t.C, t.Stop
}
