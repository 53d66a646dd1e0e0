//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Env vars that turn the test binary into a UDP sender, run inside a
// network namespace with `ip netns exec NS <test binary>`.
const (
	envSendTo    = "CAIRN_EBPF_TEST_SEND_TO"
	envSendCount = "CAIRN_EBPF_TEST_SEND_COUNT"
)

func TestMain(m *testing.M) {
	if to := os.Getenv(envSendTo); to != "" {
		os.Exit(helperSend(to, os.Getenv(envSendCount)))
	}
	os.Exit(m.Run())
}

// helperSend sends count small UDP datagrams to addr and returns an exit code.
func helperSend(addr, count string) int {
	n, err := strconv.Atoi(count)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad count:", err)
		return 2
	}
	conn, err := net.Dial("udp4", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		return 1
	}
	defer conn.Close()
	for i := 0; i < n; i++ {
		if _, err := fmt.Fprintf(conn, "cairn-ebpf-test %d", i); err != nil {
			// An ICMP error from an earlier datagram may surface here.
			fmt.Fprintln(os.Stderr, "send:", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0
}

func TestAttachNoSuchInterface(t *testing.T) {
	_, err := Attach("cairnnosuch0", nil)
	if err == nil {
		t.Fatal("Attach to a missing interface succeeded")
	}
	if errors.Is(err, ErrUnsupported) {
		t.Fatalf("missing interface reported as unsupported: %v", err)
	}
	t.Logf("error as expected: %v", err)
}

func TestAttachInvalidRules(t *testing.T) {
	_, err := Attach("lo", []Rule{{Name: "x", Direction: Both, Port: 80}})
	if err == nil || errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "needs protocol") {
		t.Fatalf("want a validation error, got %v", err)
	}
}

type vethEnv struct {
	ns       string
	host     string // veth end in the root namespace (filter attached here)
	hostAddr netip.Addr
	peerAddr netip.Addr
	testBin  string
	t        *testing.T
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newVeth creates a namespace and a veth pair in 198.18.0.0/15 (the
// benchmarking range) with random names and a random /30 so reruns and
// concurrent runs do not collide.
func newVeth(t *testing.T) *vethEnv {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and load eBPF")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(r[:3])
	e := &vethEnv{
		ns:       "cairn-ebpf-" + id,
		host:     "cbh" + id,
		hostAddr: netip.AddrFrom4([4]byte{198, 19, r[3], 1}),
		peerAddr: netip.AddrFrom4([4]byte{198, 19, r[3], 2}),
		testBin:  bin,
		t:        t,
	}
	peer := "cbp" + id
	ipCmd(t, "netns", "add", e.ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", e.ns).Run() })
	ipCmd(t, "link", "add", e.host, "type", "veth", "peer", "name", peer, "netns", e.ns)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", e.host).Run() })
	ipCmd(t, "addr", "add", e.hostAddr.String()+"/30", "dev", e.host)
	ipCmd(t, "link", "set", e.host, "up")
	ipCmd(t, "-n", e.ns, "addr", "add", e.peerAddr.String()+"/30", "dev", peer)
	ipCmd(t, "-n", e.ns, "link", "set", peer, "up")
	ipCmd(t, "-n", e.ns, "link", "set", "lo", "up")
	return e
}

// sendFromPeer sends n UDP datagrams from inside the namespace to addr.
func (e *vethEnv) sendFromPeer(addr string, n int) {
	e.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", e.ns, e.testBin, "-test.run=^$")
	cmd.Env = append(os.Environ(), envSendTo+"="+addr, envSendCount+"="+strconv.Itoa(n))
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("sender in %s: %v\n%s", e.ns, err, out)
	}
}

func snapshot(t *testing.T, f *Filter) Snapshot {
	t.Helper()
	s, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return s
}

func waitFor(cond func() bool, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

func TestFilterVeth(t *testing.T) {
	e := newVeth(t)

	f, err := Attach(e.host, nil)
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("eBPF filter unsupported here: %v", err)
	}
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})

	// Receiver in the root namespace, on the filtered veth's address.
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: e.hostAddr.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close() })
	port := uint16(rx.LocalAddr().(*net.UDPAddr).Port)
	var received atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := rx.ReadFrom(buf); err != nil {
				return
			}
			received.Add(1)
		}
	}()
	target := net.JoinHostPort(e.hostAddr.String(), strconv.Itoa(int(port)))
	udpIn := Key{Direction: Ingress, Protocol: "udp", Port: port}
	const n = 20

	// 1. No rules: traffic flows and is counted on ingress.
	s0 := snapshot(t, f)
	e.sendFromPeer(target, n)
	if !waitFor(func() bool { return received.Load() >= n }, 5*time.Second) {
		t.Fatalf("received %d of %d datagrams without rules", received.Load(), n)
	}
	s1 := snapshot(t, f)
	d := Delta(s0, s1)
	if c := d.Traffic[udpIn]; c.Packets < n || c.Bytes < n*42 {
		t.Fatalf("ingress udp/%d counter rose by %+v, want >= %d packets; delta %+v", port, c, n, d.Traffic)
	}
	t.Logf("phase 1: received %d, counter delta %+v", received.Load(), d.Traffic[udpIn])

	// 2. Drop rule for the port (after a Count rule on the peer's address):
	// nothing arrives, both rules' hit counters rise, traffic still counted.
	peerCIDR := netip.PrefixFrom(e.peerAddr, 32)
	rules := []Rule{
		{Name: "count-peer", Action: Count, Direction: Both, CIDR: peerCIDR},
		{Name: "drop-test-port", Action: Drop, Direction: Ingress, Protocol: UDP, Port: port},
	}
	if err := f.SetRules(rules); err != nil {
		t.Fatalf("SetRules: %v", err)
	}
	before := received.Load()
	e.sendFromPeer(target, n)
	time.Sleep(300 * time.Millisecond)
	if got := received.Load() - before; got != 0 {
		t.Fatalf("received %d datagrams despite the drop rule", got)
	}
	s2 := snapshot(t, f)
	d = Delta(s1, s2)
	if h := d.RuleHits["drop-test-port"]; h.Packets < n {
		t.Fatalf("drop rule hits rose by %+v, want >= %d; hits %+v", h, n, s2.RuleHits)
	}
	if h := d.RuleHits["count-peer"]; h.Packets < n {
		t.Fatalf("count rule hits rose by %+v, want >= %d; hits %+v", h, n, s2.RuleHits)
	}
	if c := d.Traffic[udpIn]; c.Packets < n {
		t.Fatalf("dropped packets not counted: %+v", c)
	}
	t.Logf("phase 2: dropped, rule hit delta %+v", d.RuleHits)

	// 3. A drop rule whose CIDR does not match the peer: traffic flows.
	if err := f.SetRules([]Rule{{Name: "drop-test-port", Action: Drop, Direction: Ingress, Protocol: UDP, Port: port, CIDR: netip.MustParsePrefix("192.0.2.0/24")}}); err != nil {
		t.Fatalf("SetRules: %v", err)
	}
	before = received.Load()
	e.sendFromPeer(target, n)
	if !waitFor(func() bool { return received.Load()-before >= n }, 5*time.Second) {
		t.Fatalf("received %d of %d datagrams with a non-matching CIDR rule", received.Load()-before, n)
	}
	s3 := snapshot(t, f)
	if h := Delta(s2, s3).RuleHits["drop-test-port"]; h.Packets != 0 {
		t.Fatalf("non-matching rule was hit: %+v", h)
	}
	if h := s3.RuleHits["drop-test-port"]; h.Packets < n {
		t.Fatalf("hits of a kept rule name were lost across SetRules: %+v", h)
	}

	// 4. Rules removed: traffic flows again.
	if err := f.SetRules(nil); err != nil {
		t.Fatalf("SetRules(nil): %v", err)
	}
	before = received.Load()
	e.sendFromPeer(target, n/2)
	if !waitFor(func() bool { return received.Load()-before >= n/2 }, 5*time.Second) {
		t.Fatalf("received %d of %d datagrams after removing the rules", received.Load()-before, n/2)
	}

	// 5. Egress: datagrams from the root namespace to the peer are counted
	// under the destination port, and an egress drop rule hits them.
	const egressPort = 40999
	udpOut := Key{Direction: Egress, Protocol: "udp", Port: egressPort}
	// Unconnected socket: ICMP port unreachable from the peer must not
	// turn later writes into ECONNREFUSED.
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: e.hostAddr.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dst := &net.UDPAddr{IP: e.peerAddr.AsSlice(), Port: egressPort}
	sendOut := func() {
		for i := 0; i < n; i++ {
			if _, err := conn.WriteTo([]byte("out"), dst); err != nil {
				t.Fatalf("send to peer: %v", err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	s4 := snapshot(t, f)
	sendOut()
	var s5 Snapshot
	waitFor(func() bool { s5 = snapshot(t, f); return Delta(s4, s5).Traffic[udpOut].Packets >= n }, 2*time.Second)
	if c := Delta(s4, s5).Traffic[udpOut]; c.Packets < n {
		t.Fatalf("egress udp/%d counter rose by %+v, want >= %d", egressPort, c, n)
	}
	if err := f.SetRules([]Rule{{Name: "drop-out", Action: Drop, Direction: Egress, Protocol: UDP, Port: egressPort, CIDR: netip.MustParsePrefix(e.peerAddr.String() + "/30")}}); err != nil {
		t.Fatal(err)
	}
	sendOut()
	var s6 Snapshot
	waitFor(func() bool { s6 = snapshot(t, f); return Delta(s5, s6).RuleHits["drop-out"].Packets >= n }, 2*time.Second)
	if h := Delta(s5, s6).RuleHits["drop-out"]; h.Packets < n {
		t.Fatalf("egress drop rule hits rose by %+v, want >= %d", h, n)
	}
	t.Logf("traffic keys after the test: %d", len(s6.Traffic))
}

func TestFilterSetRulesValidation(t *testing.T) {
	e := newVeth(t)
	f, err := Attach(e.host, []Rule{{Name: "a", Direction: Both}})
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("eBPF filter unsupported here: %v", err)
	}
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	defer f.Close()
	err = f.SetRules([]Rule{{Name: "a", Direction: Both}, {Name: "a", Direction: Both}})
	if err == nil || !strings.Contains(err.Error(), "duplicate name") {
		t.Fatalf("want duplicate name error, got %v", err)
	}
	max := make([]Rule, MaxRules)
	for i := range max {
		max[i] = Rule{Name: fmt.Sprintf("r%d", i), Action: Count, Direction: Both}
	}
	if err := f.SetRules(max); err != nil {
		t.Fatalf("SetRules(%d rules): %v", MaxRules, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := f.Snapshot(); err == nil {
		t.Fatal("Snapshot after Close succeeded")
	}
}

// TestFilterTrafficOverflow fills the traffic map with distinct ports and
// checks that further packets land in the port-0 overflow counter.
func TestFilterTrafficOverflow(t *testing.T) {
	e := newVeth(t)
	f, err := Attach(e.host, nil)
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("eBPF filter unsupported here: %v", err)
	}
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	defer f.Close()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: e.hostAddr.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const sent = MaxTrafficKeys + 200
	for i := 0; i < sent; i++ {
		dst := &net.UDPAddr{IP: e.peerAddr.AsSlice(), Port: 20000 + i}
		if _, err := conn.WriteTo([]byte("x"), dst); err != nil {
			t.Fatalf("send: %v", err)
		}
		if i%256 == 0 {
			time.Sleep(time.Millisecond) // stay under the neighbour queue while ARP resolves
		}
	}
	var s Snapshot
	var total uint64
	waitFor(func() bool {
		s = snapshot(t, f)
		total = 0
		for k, c := range s.Traffic {
			if k.Direction == Egress && k.Protocol == "udp" {
				total += c.Packets
			}
		}
		return total >= sent
	}, 3*time.Second)
	if total < sent {
		t.Fatalf("egress udp packets counted: %d, want >= %d", total, sent)
	}
	if len(s.Traffic) > MaxTrafficKeys {
		t.Fatalf("%d traffic keys, map holds %d", len(s.Traffic), MaxTrafficKeys)
	}
	if c := s.Traffic[Key{Direction: Egress, Protocol: "udp"}]; c.Packets == 0 {
		t.Fatalf("overflow counter empty; %d keys", len(s.Traffic))
	}
	t.Logf("%d keys, overflow %+v", len(s.Traffic), s.Traffic[Key{Direction: Egress, Protocol: "udp"}])
}
