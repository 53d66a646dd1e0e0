package integration

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// EndpointSlices may not point at loopback, so backends that Routes reach
// through Services listen inside a network namespace the tests create, joined
// to the host by a veth pair. Addresses come from 198.18.0.0/15, the range
// reserved for network benchmarks: nothing outside this machine answers there.
const (
	testNetns  = "cairn-it"
	hostVeth   = "cairn-it-h"
	nsVeth     = "cairn-it-n"
	hostVethIP = "198.18.77.1"
	backendIP  = "198.18.77.2"
)

var (
	netnsOnce sync.Once
	netnsErr  error
)

// requireNetns creates the namespace once per test binary (and removes any
// left over by an interrupted run), or skips with the reason it cannot.
func requireNetns(tb testing.TB) {
	tb.Helper()
	netnsOnce.Do(func() {
		if os.Geteuid() != 0 {
			netnsErr = errors.New("creating a network namespace needs root")
			return
		}
		if _, err := exec.LookPath("ip"); err != nil {
			netnsErr = errors.New("the ip command (iproute2) is not installed")
			return
		}
		_ = exec.Command("ip", "netns", "del", testNetns).Run()
		_ = exec.Command("ip", "link", "del", hostVeth).Run()
		steps := [][]string{
			{"netns", "add", testNetns},
			{"link", "add", hostVeth, "type", "veth", "peer", "name", nsVeth},
			{"link", "set", nsVeth, "netns", testNetns},
			{"addr", "add", hostVethIP + "/30", "dev", hostVeth},
			{"link", "set", hostVeth, "up"},
			{"-n", testNetns, "addr", "add", backendIP + "/30", "dev", nsVeth},
			{"-n", testNetns, "link", "set", nsVeth, "up"},
			{"-n", testNetns, "link", "set", "lo", "up"},
		}
		for _, s := range steps {
			if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
				netnsErr = fmt.Errorf("ip %v: %w: %s", s, err, out)
				return
			}
		}
	})
	if netnsErr != nil {
		tb.Skipf("backends in a network namespace are unavailable: %v", netnsErr)
	}
}

func removeNetns() {
	if netnsErr == nil {
		_ = exec.Command("ip", "netns", "del", testNetns).Run()
		_ = exec.Command("ip", "link", "del", hostVeth).Run()
	}
}

// listenInNetns opens a TCP listener on backendIP inside the namespace. The
// socket keeps its namespace after the thread switches back.
func listenInNetns(tb testing.TB) net.Listener {
	tb.Helper()
	var lis net.Listener
	inNetns(tb, func() (err error) {
		lis, err = net.Listen("tcp", backendIP+":0")
		return err
	})
	return lis
}

// dialUDPInNetns opens a UDP socket inside the namespace, connected to addr.
func dialUDPInNetns(tb testing.TB, addr string) net.Conn {
	tb.Helper()
	var c net.Conn
	inNetns(tb, func() (err error) {
		c, err = net.Dial("udp", addr)
		return err
	})
	tb.Cleanup(func() { c.Close() })
	return c
}

// inNetns runs open on a thread inside the namespace; sockets it opens stay
// there.
func inNetns(tb testing.TB, open func() error) {
	tb.Helper()
	requireNetns(tb)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		tb.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open("/var/run/netns/" + testNetns)
	if err != nil {
		tb.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		tb.Fatalf("entering network namespace: %v", err)
	}
	openErr := open()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// This thread is in the wrong namespace: let it die with the test.
		panic(fmt.Sprintf("leaving network namespace: %v", err))
	}
	if openErr != nil {
		tb.Fatal(openErr)
	}
}
