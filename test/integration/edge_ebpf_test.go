package integration

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/edge-agent/agent"
)

// TestEdgePacketFilter runs an agent whose eBPF filter sits on the host end
// of the test veth: the rules of spec.packetFilters reach it through the
// twin, its counters reach the hub's metrics, and a Drop rule drops.
func TestEdgePacketFilter(t *testing.T) {
	requireNetns(t)
	e := startEdge(t)

	// The receiver on the host; the sender in the namespace, so packets
	// enter the host through the veth (ingress).
	recv, err := net.ListenPacket("udp", hostVethIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	port := int32(recv.LocalAddr().(*net.UDPAddr).Port)
	send := dialUDPInNetns(t, recv.LocalAddr().String())

	rule := func(action edgev1alpha1.FilterAction) []edgev1alpha1.PacketFilterRule {
		return []edgev1alpha1.PacketFilterRule{{Name: "sensor-udp", Action: action, Direction: "Ingress", Protocol: "UDP", Port: &port}}
	}
	token := e.device(t, "gw", nil)
	setFilters(t, e.ns, "gw", rule("Count"))
	proxy := newCutProxy(t, e.hubAddr)
	a, _ := e.agent(t, "gw", token, t.TempDir(), proxy.addr(), func(c *agent.Config) {
		c.PacketFilterInterface = hostVeth
		c.MetricsInterval = 200 * time.Millisecond
	})
	e.waitDevice(t, "gw", func(d *edgev1alpha1.EdgeDevice) error {
		if d.Status.EBPF == nil || !d.Status.EBPF.Active {
			return fmt.Errorf("ebpf status %+v; want active", d.Status.EBPF)
		}
		return nil
	})

	// Count: packets arrive and the hub sees the rule's hits.
	const n = 20
	received := sendUDP(t, send, recv, n)
	if received != n {
		t.Fatalf("received %d of %d packets under a Count rule", received, n)
	}
	eventually(t, 20*time.Second, func(context.Context) error {
		if got := counterValue(t, e.metrics, "cairn_edgehub_filter_rule_hits_total", map[string]string{"namespace": e.ns, "rule": "sensor-udp"}); got < n {
			return fmt.Errorf("rule hits at the hub = %v; want >= %d", got, n)
		}
		if got := counterValue(t, e.metrics, "cairn_edgehub_device_packets_total", map[string]string{"namespace": e.ns, "direction": "ingress", "protocol": "udp"}); got < n {
			return fmt.Errorf("udp ingress packets at the hub = %v; want >= %d", got, n)
		}
		return nil
	})

	// Offline: counters keep counting, reports wait in the on-disk outbox
	// and reach the hub after the partition.
	hits := counterValue(t, e.metrics, "cairn_edgehub_filter_rule_hits_total", map[string]string{"namespace": e.ns, "rule": "sensor-udp"})
	proxy.setCut(true)
	eventually(t, 20*time.Second, func(context.Context) error {
		if a.Connected() {
			return fmt.Errorf("agent still connected")
		}
		return nil
	})
	if got := sendUDP(t, send, recv, n); got != n {
		t.Fatalf("received %d of %d packets while the agent was offline", got, n)
	}
	time.Sleep(time.Second) // a few report intervals, all queued
	if got := counterValue(t, e.metrics, "cairn_edgehub_filter_rule_hits_total", map[string]string{"namespace": e.ns, "rule": "sensor-udp"}); got != hits {
		t.Fatalf("rule hits at the hub moved from %v to %v during the partition", hits, got)
	}
	proxy.setCut(false)
	eventually(t, 30*time.Second, func(context.Context) error {
		if got := counterValue(t, e.metrics, "cairn_edgehub_filter_rule_hits_total", map[string]string{"namespace": e.ns, "rule": "sensor-udp"}); got < hits+n {
			return fmt.Errorf("rule hits at the hub = %v; want >= %v once the outbox is replayed", got, hits+n)
		}
		return nil
	})

	// Drop: the spec change reaches the filter and nothing gets through.
	before := counterValue(t, e.metrics, "cairn_edgehub_filter_rule_hits_total", map[string]string{"namespace": e.ns, "rule": "sensor-udp"})
	setFilters(t, e.ns, "gw", rule("Drop"))
	eventually(t, 20*time.Second, func(context.Context) error {
		if got := sendUDP(t, send, recv, 1); got != 0 {
			return fmt.Errorf("a packet got through the Drop rule")
		}
		return nil
	})
	if got := sendUDP(t, send, recv, n); got != 0 {
		t.Fatalf("%d of %d packets got through the Drop rule", got, n)
	}
	eventually(t, 20*time.Second, func(context.Context) error {
		if got := counterValue(t, e.metrics, "cairn_edgehub_filter_rule_hits_total", map[string]string{"namespace": e.ns, "rule": "sensor-udp"}); got < before+n {
			return fmt.Errorf("rule hits at the hub = %v; want >= %v", got, before+n)
		}
		return nil
	})

	// Removing the rules lets traffic through again.
	setFilters(t, e.ns, "gw", nil)
	eventually(t, 20*time.Second, func(context.Context) error {
		if got := sendUDP(t, send, recv, 1); got != 1 {
			return fmt.Errorf("traffic still dropped after the rules were removed")
		}
		return nil
	})

	t.Run("an interface the kernel cannot attach to is reported", func(t *testing.T) {
		token := e.device(t, "no-nic", nil)
		e.agent(t, "no-nic", token, t.TempDir(), e.hubAddr, func(c *agent.Config) { c.PacketFilterInterface = "cairn-none0" })
		e.waitDevice(t, "no-nic", func(d *edgev1alpha1.EdgeDevice) error {
			if err := conditionIs(d, "Online", metav1.ConditionTrue); err != nil {
				return err
			}
			if d.Status.EBPF == nil || d.Status.EBPF.Active || !strings.Contains(d.Status.EBPF.Reason, "cairn-none0") {
				return fmt.Errorf("ebpf status %+v; want inactive naming the interface", d.Status.EBPF)
			}
			return nil
		})
	})
}

func setFilters(t *testing.T, ns, name string, rules []edgev1alpha1.PacketFilterRule) {
	t.Helper()
	eventually(t, 10*time.Second, func(ctx context.Context) error {
		d, err := getDevice(ctx, ns, name)
		if err != nil {
			return err
		}
		d.Spec.PacketFilters = rules
		return env.Client.Update(ctx, d)
	})
}

// sendUDP sends n datagrams and returns how many arrived.
func sendUDP(t *testing.T, send net.Conn, recv net.PacketConn, n int) int {
	t.Helper()
	for i := range n {
		if _, err := fmt.Fprintf(send, "reading %d", i); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	buf := make([]byte, 64)
	for {
		_ = recv.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := recv.ReadFrom(buf); err != nil {
			return got
		}
		got++
	}
}

// counterValue sums a counter's series matching labels.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
