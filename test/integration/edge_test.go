package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/controllers"
	"github.com/cairn-platform/cairn/dataplane/edgehub"
	xdsserver "github.com/cairn-platform/cairn/dataplane/xds/server"
	"github.com/cairn-platform/cairn/edge-agent/agent"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
)

// edgeEnv is a manager with the edge hub listening on loopback.
type edgeEnv struct {
	// hubAddr is where agents connect: the embedded hub or mosquitto.
	hubAddr string
	ns      string
	metrics *prometheus.Registry
	// joinPassword is the external broker's join account password.
	joinPassword string
}

// forEachBroker runs f against the embedded hub and against mosquitto as
// the external broker: the same suite, the same topics.
func forEachBroker(t *testing.T, f func(*testing.T, *edgeEnv)) {
	t.Run("embedded", func(t *testing.T) { f(t, startEdge(t)) })
	t.Run("mosquitto", func(t *testing.T) { f(t, startEdgeMosquitto(t)) })
}

func startEdge(t *testing.T) *edgeEnv {
	t.Helper()
	requireEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return runHub(t, edgehub.Options{TCPListener: ln}, ln.Addr().String(), "")
}

// startEdgeMosquitto runs the hub as a client of a mosquitto broker.
func startEdgeMosquitto(t *testing.T) *edgeEnv {
	t.Helper()
	requireEnv(t)
	b := startMosquitto(t)
	const joinPassword = "shared-join-secret"
	ext := &edgehub.ExternalBroker{URL: &url.URL{Scheme: "mqtt", Host: b.addr}, Username: b.adminUser, Password: b.adminPwd, JoinPassword: joinPassword}
	return runHub(t, edgehub.Options{External: ext}, b.addr, joinPassword)
}

// runHub runs the manager with the hub; setup may add to its configuration.
func runHub(t testing.TB, opts edgehub.Options, agentAddr, joinPassword string, setup ...func(*edgehub.Hub, *controllers.Config)) *edgeEnv {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Client, opts.APIReader, opts.Log = env.Client, env.Client, testLogger(t)
	opts.Registerer = reg
	if opts.FlushInterval == 0 {
		opts.FlushInterval = 100 * time.Millisecond // quick tests; the hub's default is 500ms
	}
	hub, err := edgehub.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	cfg := controllers.Config{XDS: xdsserver.New(testLogger(t)), EdgeHub: hub}
	for _, f := range setup {
		f(hub, &cfg)
	}
	runManager(t, cfg)
	return &edgeEnv{hubAddr: agentAddr, ns: newNamespace(t), metrics: reg, joinPassword: joinPassword}
}

// device creates an EdgeDevice and returns its bootstrap token.
func (e *edgeEnv) device(t *testing.T, name string, desired map[string]string) string {
	t.Helper()
	d := &edgev1alpha1.EdgeDevice{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec:       edgev1alpha1.EdgeDeviceSpec{Hardware: edgev1alpha1.Hardware{Model: "sim"}, HeartbeatInterval: "1s", Desired: jsonMap(desired)},
	}
	if err := env.Client.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	var token string
	eventually(t, 20*time.Second, func(ctx context.Context) error {
		var s corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: name + "-bootstrap"}, &s); err != nil {
			return err
		}
		token = string(s.Data["token"])
		return nil
	})
	return token
}

// agent runs an edge agent for the device until the test ends or stop is
// called; the hub address may be a proxy's.
func (e *edgeEnv) agent(t *testing.T, name, token, dataDir, hubAddr string, edit ...func(*agent.Config)) (a *agent.Agent, stop func()) {
	t.Helper()
	u, _ := url.Parse("mqtt://" + hubAddr)
	cfg := agent.Config{
		Hub: u, Device: protocol.Device{Namespace: e.ns, Name: name}, BootstrapToken: token, DataDir: dataDir,
		Version: "test-1.0", Heartbeat: time.Second, RetryDelay: 200 * time.Millisecond, Log: testLogger(t),
		JoinPassword: e.joinPassword,
	}
	for _, f := range edit {
		f(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx); err != nil {
			t.Errorf("agent %s: %v", name, err)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			if err := a.Close(); err != nil {
				t.Errorf("closing agent %s: %v", name, err)
			}
		})
	}
	t.Cleanup(stop)
	return a, stop
}

func jsonMap(m map[string]string) map[string]apiextensionsv1.JSON {
	if m == nil {
		return nil
	}
	out := map[string]apiextensionsv1.JSON{}
	for k, v := range m {
		out[k] = apiextensionsv1.JSON{Raw: []byte(v)}
	}
	return out
}

func getDevice(ctx context.Context, ns, name string) (*edgev1alpha1.EdgeDevice, error) {
	var d edgev1alpha1.EdgeDevice
	err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d)
	return &d, err
}

// waitDevice waits until check passes on the device.
func (e *edgeEnv) waitDevice(t *testing.T, name string, check func(*edgev1alpha1.EdgeDevice) error) {
	t.Helper()
	eventually(t, 30*time.Second, func(ctx context.Context) error {
		d, err := getDevice(ctx, e.ns, name)
		if err != nil {
			return err
		}
		return check(d)
	})
}

func conditionIs(d *edgev1alpha1.EdgeDevice, typ string, status metav1.ConditionStatus) error {
	c := meta.FindStatusCondition(d.Status.Conditions, typ)
	if c == nil || c.Status != status {
		return fmt.Errorf("%s = %+v; want %s", typ, c, status)
	}
	return nil
}

func fieldIs(m map[string]apiextensionsv1.JSON, key, want string) error {
	if got := string(m[key].Raw); got != want {
		return fmt.Errorf("%s = %q; want %q (all: %v)", key, got, want, m)
	}
	return nil
}

func waitDesired(t *testing.T, get func() map[string]json.RawMessage, key, want string) {
	t.Helper()
	eventually(t, 30*time.Second, func(context.Context) error {
		if got := string(get()[key]); got != want {
			return fmt.Errorf("agent desired %s = %q; want %q", key, got, want)
		}
		return nil
	})
}

// TestEdgeJoinAndTwin: an agent joins with its bootstrap token, receives
// desired properties, reports its own into status, goes offline and online
// with its session, and is cut off when revoked.
func TestEdgeJoinAndTwin(t *testing.T) { forEachBroker(t, testEdgeJoinAndTwin) }

func testEdgeJoinAndTwin(t *testing.T, e *edgeEnv) {
	ctx := context.Background()
	token := e.device(t, "thermo", map[string]string{"setpoint": "21", "mode": `"eco"`})
	dir := t.TempDir()
	a, stop := e.agent(t, "thermo", token, dir, e.hubAddr)

	e.waitDevice(t, "thermo", func(d *edgev1alpha1.EdgeDevice) error {
		if err := conditionIs(d, "Online", metav1.ConditionTrue); err != nil {
			return err
		}
		if err := conditionIs(d, "Ready", metav1.ConditionTrue); err != nil {
			return err
		}
		if d.Status.AgentVersion != "test-1.0" || d.Status.LastSeen == nil {
			return fmt.Errorf("agentVersion %q lastSeen %v", d.Status.AgentVersion, d.Status.LastSeen)
		}
		if d.Status.EBPF == nil || d.Status.EBPF.Active || !strings.Contains(d.Status.EBPF.Reason, "without --ebpf-interface") {
			return fmt.Errorf("ebpf status %+v; want inactive, saying why", d.Status.EBPF)
		}
		return nil
	})
	waitDesired(t, a.Desired, "setpoint", "21")
	waitDesired(t, a.Desired, "mode", `"eco"`)
	if b, err := os.ReadFile(filepath.Join(dir, "credential")); err != nil || len(b) < 32 {
		t.Fatalf("credential not stored: %q, %v", b, err)
	}
	var cred corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "thermo-credentials"}, &cred); err != nil {
		t.Fatal(err)
	}
	if len(cred.Data["sha256"]) != 64 || len(cred.OwnerReferences) != 1 {
		t.Fatalf("credential Secret holds %v, owners %v; want only a sha256 and the device as owner", cred.Data, cred.OwnerReferences)
	}

	t.Run("reported properties reach status", func(t *testing.T) {
		if err := a.SetReported(ctx, "temperature", json.RawMessage(`20.5`)); err != nil {
			t.Fatal(err)
		}
		e.waitDevice(t, "thermo", func(d *edgev1alpha1.EdgeDevice) error { return fieldIs(d.Status.Reported, "temperature", "20.5") })
	})

	t.Run("spec changes reach the device", func(t *testing.T) {
		d, err := getDevice(ctx, e.ns, "thermo")
		if err != nil {
			t.Fatal(err)
		}
		d.Spec.Desired = jsonMap(map[string]string{"setpoint": "22"})
		if err := env.Client.Update(ctx, d); err != nil {
			t.Fatal(err)
		}
		waitDesired(t, a.Desired, "setpoint", "22")
		eventually(t, 20*time.Second, func(context.Context) error {
			if _, ok := a.Desired()["mode"]; ok {
				return fmt.Errorf("mode still desired after its removal from spec")
			}
			return nil
		})
		e.waitDevice(t, "thermo", func(d *edgev1alpha1.EdgeDevice) error { return fieldIs(d.Status.Desired, "setpoint", "22") })
	})

	t.Run("a wrong credential and foreign topics are refused", func(t *testing.T) {
		other := e.device(t, "other", nil)
		_ = other
		if code := connectCode(t, e.hubAddr, e.ns+"/thermo", e.ns+"/thermo", "not-the-credential"); code < 0x80 {
			t.Fatalf("CONNACK %#x for a wrong credential; want a refusal", code)
		}
		thermoCred, err := os.ReadFile(filepath.Join(dir, "credential"))
		if err != nil {
			t.Fatal(err)
		}
		if code := connectCode(t, e.hubAddr, "spoof", e.ns+"/thermo", string(thermoCred)); code < 0x80 {
			t.Fatalf("CONNACK %#x for a client id other than the device; want refused", code)
		}
		// A device joined for real tries to write into thermo's twin and
		// to read its messages.
		otherDir := t.TempDir()
		_, stopOther := e.agent(t, "other", other, otherDir, e.hubAddr)
		e.waitDevice(t, "other", func(d *edgev1alpha1.EdgeDevice) error { return conditionIs(d, "Online", metav1.ConditionTrue) })
		stopOther()
		cred, err := os.ReadFile(filepath.Join(otherDir, "credential"))
		if err != nil {
			t.Fatal(err)
		}
		c := dialMQTT(t, e.hubAddr, e.ns+"/other", e.ns+"/other", string(cred))
		thermo := protocol.Device{Namespace: e.ns, Name: "thermo"}
		pub, err := c.Publish(ctx, &paho.Publish{Topic: thermo.Topic(protocol.TwinUp), QoS: 1,
			Payload: []byte(`{"kind":"delta","from":"x","entries":{"reported/temperature":{"v":99,"s":{"w":1,"l":0,"n":"x"}}}}`)})
		if err == nil && (pub == nil || pub.ReasonCode < 0x80) {
			t.Fatalf("publishing into another device's topic: %+v; want refused", pub)
		}
		sub, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: thermo.Topic(protocol.TwinDown), QoS: 1}}})
		if err == nil && (len(sub.Reasons) != 1 || sub.Reasons[0] < 0x80) {
			t.Fatalf("subscribing to another device's topic: %+v; want refused", sub)
		}
		time.Sleep(300 * time.Millisecond)
		d, err := getDevice(ctx, e.ns, "thermo")
		if err != nil {
			t.Fatal(err)
		}
		if err := fieldIs(d.Status.Reported, "temperature", "20.5"); err != nil {
			t.Fatalf("thermo's twin changed by another device: %v", err)
		}
	})

	t.Run("an unknown device or a wrong token cannot join", func(t *testing.T) {
		before := counterValue(t, e.metrics, "cairn_edgehub_auth_failures_total", map[string]string{"kind": "join"})
		ghost, _ := e.agent(t, "ghost", "not-a-token", t.TempDir(), e.hubAddr)
		impostor, _ := e.agent(t, "thermo", "not-thermos-token", t.TempDir(), e.hubAddr)
		eventually(t, 20*time.Second, func(context.Context) error {
			if got := counterValue(t, e.metrics, "cairn_edgehub_auth_failures_total", map[string]string{"kind": "join"}); got < before+2 {
				return fmt.Errorf("join failures = %v; want >= %v", got, before+2)
			}
			return nil
		})
		if ghost.Connected() || impostor.Connected() {
			t.Fatal("an agent with a wrong token is connected")
		}
		var cred corev1.Secret
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "ghost-credentials"}, &cred)
		if err == nil {
			t.Fatal("a credential was issued for a device that does not exist")
		}
	})

	t.Run("malformed and oversized messages are rejected, the device stays", func(t *testing.T) {
		cred, err := os.ReadFile(filepath.Join(dir, "credential"))
		if err != nil {
			t.Fatal(err)
		}
		stop() // the raw client takes the device's session
		c := dialMQTT(t, e.hubAddr, e.ns+"/thermo", e.ns+"/thermo", string(cred))
		thermo := protocol.Device{Namespace: e.ns, Name: "thermo"}
		for _, payload := range [][]byte{
			[]byte(`{not json`),
			[]byte(`{"kind":"delta","from":"x","entries":{"reported/t":{"v":1,"s":{"w":1,"l":0,"n":""}}}}`),
			[]byte(`{"kind":"delta","from":"x","entries":{"secret/t":{"v":1,"s":{"w":1,"l":0,"n":"x"}}}}`),
			[]byte(fmt.Sprintf(`{"kind":"delta","from":"x","entries":{"reported/t":{"v":1,"s":{"w":%d,"l":0,"n":"x"}}}}`, time.Now().Add(time.Hour).UnixNano())),
		} {
			if _, err := c.Publish(ctx, &paho.Publish{Topic: thermo.Topic(protocol.TwinUp), QoS: 1, Payload: payload}); err != nil {
				t.Fatalf("publish: %v", err)
			}
		}
		// 40 properties of 15 KiB each: every message fits, the twin would
		// not (in status, nor in the full twin message sent on connect).
		big := fmt.Sprintf(`"%s"`, strings.Repeat("x", 15<<10))
		const bigCount = 40
		for i := range bigCount {
			payload := fmt.Sprintf(`{"kind":"delta","from":"x","entries":{"reported/big%d":{"v":%s,"s":{"w":%d,"l":0,"n":"x"}}}}`, i, big, time.Now().UnixNano())
			if _, err := c.Publish(ctx, &paho.Publish{Topic: thermo.Topic(protocol.TwinUp), QoS: 1, Payload: []byte(payload)}); err != nil {
				t.Fatalf("publish: %v", err)
			}
		}
		eventually(t, 10*time.Second, func(context.Context) error {
			if got, want := counterValue(t, e.metrics, "cairn_edgehub_rejected_messages_total", map[string]string{"topic": protocol.TwinUp}), 5; got < float64(want) {
				return fmt.Errorf("rejected twin messages = %v; want 4 malformed and at least one over the twin size", got)
			}
			return nil
		})
		// Over the broker's packet limit: the broker drops the connection.
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_, _ = c.Publish(pctx, &paho.Publish{Topic: thermo.Topic(protocol.TwinUp), QoS: 1, Payload: make([]byte, protocol.MaxPayloadBytes+8<<10)})
		cancel()
		time.Sleep(300 * time.Millisecond)
		d, err := getDevice(ctx, e.ns, "thermo")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := d.Status.Reported["t"]; ok {
			t.Fatalf("a rejected message reached status: %v", d.Status.Reported)
		}
		if _, ok := d.Status.Reported["big39"]; ok {
			t.Fatal("the twin grew past MaxTwinBytes")
		}
		if _, ok := d.Status.Reported["big0"]; !ok {
			t.Fatal("properties within the twin size limit did not reach status")
		}
	})

	t.Run("revoked devices are disconnected and cannot come back", func(t *testing.T) {
		a, _ := e.agent(t, "thermo", token, dir, e.hubAddr)
		e.waitDevice(t, "thermo", func(d *edgev1alpha1.EdgeDevice) error { return conditionIs(d, "Online", metav1.ConditionTrue) })
		// Revoke: the bootstrap token goes first (as cairn device revoke
		// does), or the disconnected agent could join again with it before
		// the credential is gone.
		for _, name := range []string{"thermo-bootstrap", "thermo-credentials"} {
			if err := env.Client.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}}); err != nil {
				t.Fatal(err)
			}
		}
		e.waitDevice(t, "thermo", func(d *edgev1alpha1.EdgeDevice) error { return conditionIs(d, "Online", metav1.ConditionFalse) })
		time.Sleep(2 * time.Second)
		if a.Connected() {
			t.Fatal("a revoked agent is connected")
		}
		d, err := getDevice(ctx, e.ns, "thermo")
		if err != nil {
			t.Fatal(err)
		}
		if err := conditionIs(d, "Online", metav1.ConditionFalse); err != nil {
			t.Fatalf("after revocation: %v", err)
		}
	})
}

// connectCode returns the CONNACK reason code of a connection attempt.
func connectCode(t *testing.T, addr, clientID, user, password string) byte {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, Username: user, UsernameFlag: true, Password: []byte(password), PasswordFlag: true, KeepAlive: 30, CleanStart: true})
	if ack != nil {
		return ack.ReasonCode
	}
	if err != nil {
		t.Logf("connect: %v", err)
	}
	return 0
}

// dialMQTT connects a raw MQTT v5 client.
func dialMQTT(t *testing.T, addr, clientID, user, password string) *paho.Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, Username: user, UsernameFlag: true, Password: []byte(password), PasswordFlag: true, KeepAlive: 30, CleanStart: true})
	if err != nil || ack.ReasonCode != 0 {
		t.Fatalf("connect: %v %+v", err, ack)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}); _ = conn.Close() })
	return c
}

// cutProxy forwards TCP to a target until cut: then it drops every
// connection and refuses new ones, as a network partition does.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}
