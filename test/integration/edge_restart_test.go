package integration

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/controllers"
	"github.com/cairn-platform/cairn/dataplane/edgehub"
	xdsserver "github.com/cairn-platform/cairn/dataplane/xds/server"
	"github.com/cairn-platform/cairn/edge-agent/agent"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
	"github.com/cairn-platform/cairn/edge-agent/twin"
)

// TestEdgeHubRestart: an agent over WebSocket; the hub restarts with its
// data directory while the device is offline; the QoS 1 twin message
// queued for the device's session survives the restart, and the twin (with
// the order of its edits, from status) carries on.
func TestEdgeHubRestart(t *testing.T) {
	requireEnv(t)
	ctx := context.Background()
	dataDir := t.TempDir()
	tcpAddr, wsAddr := freeAddr(t), freeAddr(t)
	startHub := func() (stop func()) {
		ln, err := net.Listen("tcp", tcpAddr)
		if err != nil {
			t.Fatal(err)
		}
		hub, err := edgehub.New(edgehub.Options{
			TCPListener: ln, WebSocketAddress: wsAddr, DataDir: dataDir,
			Client: env.Client, APIReader: env.Client, Log: testLogger(t),
			FlushInterval: 100 * time.Millisecond, Registerer: prometheus.NewRegistry(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return runManager(t, controllers.Config{XDS: xdsserver.New(testLogger(t)), EdgeHub: hub})
	}
	stopHub := startHub()
	e := &edgeEnv{hubAddr: tcpAddr, ns: newNamespace(t)}
	token := e.device(t, "meter", map[string]string{"interval": "10"})

	// The agent speaks MQTT over WebSocket.
	agentDir := t.TempDir()
	ws, _ := url.Parse("ws://" + wsAddr + "/")
	a, stopAgent := e.agent(t, "meter", token, agentDir, "", func(c *agent.Config) { c.Hub = ws })
	waitDesired(t, a.Desired, "interval", "10")
	if err := a.SetReported(ctx, "kwh", json.RawMessage(`1234`)); err != nil {
		t.Fatal(err)
	}
	e.waitDevice(t, "meter", func(d *edgev1alpha1.EdgeDevice) error { return fieldIs(d.Status.Reported, "kwh", "1234") })
	stopAgent()
	e.waitDevice(t, "meter", func(d *edgev1alpha1.EdgeDevice) error { return conditionIs(d, "Online", metav1.ConditionFalse) })

	// While the device is offline the hub queues a twin change for its
	// session, then restarts.
	updateDesired(t, e.ns, "meter", map[string]string{"interval": "20"})
	e.waitDevice(t, "meter", func(d *edgev1alpha1.EdgeDevice) error { return fieldIs(d.Status.Desired, "interval", "20") })
	stopHub()
	startHub()

	// The device's session comes back with its subscription and the queued
	// message, without subscribing again.
	cred, err := os.ReadFile(filepath.Join(agentDir, "credential"))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan twin.Message, 4)
	conn, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			if m, err := twin.DecodeMessage(pr.Packet.Payload, protocol.MaxPayloadBytes); err == nil {
				got <- m
			}
			return true, nil
		},
	}})
	dev := e.ns + "/meter"
	expiry := uint32(3600)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ack, err := c.Connect(cctx, &paho.Connect{ClientID: dev, Username: dev, UsernameFlag: true, Password: cred, PasswordFlag: true,
		KeepAlive: 30, CleanStart: false, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	cancel()
	if err != nil || ack.ReasonCode != 0 || !ack.SessionPresent {
		t.Fatalf("reconnecting after the hub restart: %v %+v; want the session present", err, ack)
	}
	select {
	case m := <-got:
		if v := string(m.Entries["desired/interval"].Value); v != "20" {
			t.Fatalf("queued message carries interval %q; want 20 (%+v)", v, m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the QoS 1 message queued before the restart was not delivered")
	}
	_ = c.Disconnect(&paho.Disconnect{})
	conn.Close()

	// The agent comes back; the twin carries on from the status the old
	// hub wrote: the reported value is kept and new edits of both sides
	// flow.
	a, _ = e.agent(t, "meter", token, agentDir, "", func(c *agent.Config) { c.Hub = ws })
	waitDesired(t, a.Desired, "interval", "20")
	if err := a.SetReported(ctx, "kwh", json.RawMessage(`1300`)); err != nil {
		t.Fatal(err)
	}
	updateDesired(t, e.ns, "meter", map[string]string{"interval": "30"})
	waitDesired(t, a.Desired, "interval", "30")
	e.waitDevice(t, "meter", func(d *edgev1alpha1.EdgeDevice) error {
		if err := conditionIs(d, "Online", metav1.ConditionTrue); err != nil {
			return err
		}
		return fieldIs(d.Status.Reported, "kwh", "1300")
	})
}
