// Package agent is the device side of Cairn's edge: it joins the hub with
// the device's bootstrap token, keeps the credential it is given, and
// keeps the device twin in sync over MQTT v5 (paho autopaho), offline
// first: every local edit is persisted (bbolt) before anything is sent, and
// both sides exchange their whole twin on every (re)connect, so edits made
// on either side during a partition are merged without loss.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/cairn-platform/cairn/edge-agent/protocol"
	"github.com/cairn-platform/cairn/edge-agent/twin"
	"github.com/cairn-platform/cairn/internal/atomicfile"
)

// Config configures an Agent.
type Config struct {
	// Hub is the edge hub's URL: mqtt://host:port, or ws://host:port/.
	Hub *url.URL
	// Device is this device's EdgeDevice.
	Device protocol.Device
	// BootstrapToken joins the device when it has no credential yet, or
	// when its credential was refused.
	BootstrapToken string
	// JoinPassword is the password of the shared join account of an
	// external broker; empty joins the embedded hub, which takes the token
	// as the password.
	JoinPassword string
	// DataDir holds the twin store and the credential.
	DataDir string
	// Version is reported as the agent version.
	Version string
	// Heartbeat is the state message interval (default 30s).
	Heartbeat time.Duration
	// RetryDelay is the wait after a failed connection (default 2s; doubled
	// up to a minute while the hub refuses).
	RetryDelay time.Duration
	Log        logr.Logger
	// PacketFilterInterface is where the eBPF packet filter attaches; empty
	// runs without it.
	PacketFilterInterface string
	// MetricsInterval is how often packet counters are published (default
	// 30s).
	MetricsInterval time.Duration
	// OnDesired is called with the desired properties whenever they change.
	OnDesired func(desired map[string]json.RawMessage)
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
	// Metrics, shared by the agents of a process; nil keeps them unexported.
	Metrics *Metrics
	// OTA, when set, installs the firmware updates the hub assigns.
	OTA *OTAConfig
}

// Agent runs one device.
type Agent struct {
	cfg   Config
	log   logr.Logger
	store *twin.Store
	clock *twin.Clock

	mu        sync.Mutex
	state     twin.State
	cm        *autopaho.ConnectionManager
	connected bool
	ebpf      *protocol.EBPFState
	// filterChanged wakes the packet filter when its rules change.
	filterChanged chan struct{}
	// ota runs firmware updates; nil without Config.OTA.
	ota *otaRunner
}

// Twin keys are namespaced like the hub's.
const (
	desiredPrefix  = "desired/"
	reportedPrefix = "reported/"
)

// credentialFile holds the device credential inside DataDir.
const credentialFile = "credential"

// tracer records the agent's spans; without a configured provider they
// cost nothing, and their context still travels to the hub.
var tracer = otel.Tracer("github.com/cairn-platform/cairn/edge-agent/agent")

// errRefused: the hub refused the credential (revoked or replaced).
var errRefused = errors.New("the hub refused the device credential")

// New opens the agent's store; Run connects.
func New(cfg Config) (*Agent, error) {
	if cfg.Hub == nil {
		return nil, errors.New("no hub URL")
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 30 * time.Second
	}
	if cfg.MetricsInterval <= 0 {
		cfg.MetricsInterval = 30 * time.Second
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	store, err := twin.OpenStore(filepath.Join(cfg.DataDir, "twin.db"))
	if err != nil {
		return nil, err
	}
	state, last, err := store.Load()
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("loading the twin: %w", err)
	}
	clock := twin.NewClock(cfg.Device.String(), cfg.Now, 0)
	clock.Restore(last)
	a := &Agent{
		cfg: cfg, log: cfg.Log.WithValues("device", cfg.Device.String()),
		store: store, clock: clock, state: state, filterChanged: make(chan struct{}, 1),
	}
	if cfg.OTA != nil {
		if a.ota, err = a.newOTA(*cfg.OTA); err != nil {
			_ = store.Close()
			return nil, fmt.Errorf("setting up firmware updates: %w", err)
		}
	}
	return a, nil
}

// Close closes the store; call it after Run returned.
func (a *Agent) Close() error { return a.store.Close() }

// Run keeps the device connected until ctx ends: it joins when it has no
// credential, and joins again when the hub refuses the one it has.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	pf := a.startPacketFilter()
	pfDone := make(chan struct{})
	go func() { defer close(pfDone); a.runPacketFilter(ctx, pf) }()
	defer func() { cancel(); <-pfDone; pf.close() }()
	if a.ota != nil {
		otaDone := make(chan struct{})
		go func() { defer close(otaDone); a.ota.run(ctx) }()
		defer func() { cancel(); <-otaDone }()
	}
	delay := a.cfg.RetryDelay
	for ctx.Err() == nil {
		credential, err := a.credential(ctx)
		if err == nil {
			err = a.session(ctx, credential)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errRefused):
			a.log.Info("the hub refused the credential; joining again")
			if rmErr := os.Remove(filepath.Join(a.cfg.DataDir, credentialFile)); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
				return fmt.Errorf("forgetting the refused credential: %w", rmErr)
			}
		case err != nil:
			a.log.Info("not connected", "error", err.Error(), "retryIn", delay)
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Minute)
	}
	return nil
}

// credential returns the stored credential, joining first if there is
// none.
func (a *Agent) credential(ctx context.Context) (string, error) {
	path := filepath.Join(a.cfg.DataDir, credentialFile)
	b, err := os.ReadFile(path)
	if err == nil && len(b) > 0 {
		return string(b), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading the credential: %w", err)
	}
	if a.cfg.BootstrapToken == "" {
		return "", errors.New("no credential and no bootstrap token to join with")
	}
	credential, err := join(ctx, a.cfg)
	if err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(path, []byte(credential), 0o600); err != nil {
		return "", fmt.Errorf("storing the credential: %w", err)
	}
	a.cfg.Metrics.joins.Inc()
	a.log.Info("joined the hub")
	return credential, nil
}

// session holds one autopaho connection (reconnecting by itself) until ctx
// ends or the hub refuses the credential.
func (a *Agent) session(ctx context.Context, credential string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	dev := a.cfg.Device
	will, _ := json.Marshal(protocol.DeviceState{Online: false, AgentVersion: a.cfg.Version, Time: a.cfg.Now()})
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{a.cfg.Hub},
		KeepAlive:                     uint16(max(a.cfg.Heartbeat/time.Second, 5)),
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         24 * 3600,
		ReconnectBackoff:              autopaho.NewConstantBackoff(a.cfg.RetryDelay),
		ConnectTimeout:                10 * time.Second,
		ConnectUsername:               dev.String(),
		ConnectPassword:               []byte(credential),
		WillMessage:                   &paho.WillMessage{Topic: dev.Topic(protocol.State), Payload: will, QoS: 1},
		// autopaho sends "request problem information = 0", on which
		// mochi-mqtt strips user properties from every packet, PUBLISH
		// included; the trace context travels in them.
		ConnectPacketBuilder: func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if c.Properties == nil {
				c.Properties = &paho.ConnectProperties{}
			}
			c.Properties.RequestProblemInfo = true
			return c, nil
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go a.connectionUp(ctx, cm)
		},
		OnConnectionDown: func() bool {
			a.setConnected(nil)
			a.log.Info("disconnected from the hub")
			return true
		},
		OnConnectError: func(err error) {
			var ce *autopaho.ConnackError
			if errors.As(err, &ce) && (ce.ReasonCode == 0x86 || ce.ReasonCode == 0x87) {
				cancel(errRefused)
				return
			}
			a.log.V(1).Info("connecting failed", "error", err.Error())
		},
		ClientConfig: paho.ClientConfig{
			ClientID: dev.String(),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					if pr.Packet.Topic == dev.Topic(protocol.TwinDown) {
						a.onTwin(protocol.TraceFromPublish(pr.Packet), pr.Packet.Payload)
					}
					return true, nil
				},
			},
		},
	}
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		return fmt.Errorf("starting the MQTT connection: %w", err)
	}
	heartbeat := time.NewTicker(a.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-ctx.Done():
			a.setConnected(nil)
			dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = cm.Disconnect(dctx)
			dcancel()
			<-cm.Done()
			if cause := context.Cause(ctx); errors.Is(cause, errRefused) {
				return errRefused
			}
			return nil
		case <-heartbeat.C:
			a.publishState(ctx, true)
		}
	}
}

// connectionUp subscribes, announces the device and sends the whole twin;
// the hub answers with its own.
func (a *Agent) connectionUp(ctx context.Context, cm *autopaho.ConnectionManager) {
	dev := a.cfg.Device
	// A busy hub may not answer the first SUBSCRIBE in time; without the
	// subscription the device would look online and never sync.
	for delay := a.cfg.RetryDelay; ; delay = min(delay*2, time.Minute) {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: dev.Topic(protocol.TwinDown), QoS: 1}}})
		cancel()
		if err == nil {
			break
		}
		a.log.Info("subscribing failed; retrying", "error", err.Error(), "retryIn", delay)
		select {
		case <-ctx.Done():
			return
		case <-cm.Done():
			return
		case <-time.After(delay):
		}
	}
	a.setConnected(cm)
	a.log.Info("connected to the hub")
	a.publishState(ctx, true)
	a.mu.Lock()
	msg := twin.Message{Kind: twin.KindFull, From: dev.String(), Entries: a.state.Clone()}
	a.mu.Unlock()
	// Keys under config/ are the hub's alone; it refuses a device message
	// carrying them.
	maps.DeleteFunc(msg.Entries, func(k string, _ twin.Entry) bool { return strings.HasPrefix(k, protocol.ConfigPrefix) })
	a.publishTwin(ctx, msg)
	a.replayOutbox(ctx)
}

// replayOutbox sends the reports stored while offline, oldest first; what
// fails stays for the next connection.
func (a *Agent) replayOutbox(ctx context.Context) {
	for {
		items, err := a.store.Pending(100)
		if err != nil {
			a.log.Error(err, "reading the outbox")
			return
		}
		if len(items) == 0 {
			return
		}
		for _, it := range items {
			if err := a.publishQoS(ctx, it.Topic, it.Payload, 1); err != nil {
				return
			}
			if err := a.store.Ack(it.Seq); err != nil {
				a.log.Error(err, "removing a sent report from the outbox")
				return
			}
			a.cfg.Metrics.outboxReplayed.Inc()
		}
	}
}

// sendOrQueue publishes a report now, or stores it on disk for the next
// connection.
func (a *Agent) sendOrQueue(ctx context.Context, topic string, payload []byte) {
	if a.Connected() && a.publishQoS(ctx, topic, payload, 1) == nil {
		return
	}
	if _, err := a.store.Enqueue(topic, payload); err != nil {
		a.log.Error(err, "storing a report in the outbox")
		return
	}
	a.cfg.Metrics.outboxQueued.Inc()
}

func (a *Agent) setConnected(cm *autopaho.ConnectionManager) {
	a.mu.Lock()
	was := a.connected
	a.cm, a.connected = cm, cm != nil
	a.mu.Unlock()
	switch {
	case !was && cm != nil:
		a.cfg.Metrics.connected.Inc()
	case was && cm == nil:
		a.cfg.Metrics.connected.Dec()
	}
}

// Connected tells whether the agent has a session with the hub.
func (a *Agent) Connected() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.connected
}

// onTwin merges what the hub sent and persists it before anything else.
func (a *Agent) onTwin(ctx context.Context, payload []byte) {
	_, span := tracer.Start(ctx, "edge-agent.ApplyTwin", trace.WithAttributes(attribute.String("device", a.cfg.Device.String())))
	defer span.End()
	msg, err := twin.DecodeMessage(payload, protocol.MaxPayloadBytes)
	if err != nil {
		a.cfg.Metrics.rejected.Inc()
		a.log.Info("ignoring a malformed twin message", "error", err.Error())
		return
	}
	a.mu.Lock()
	next := a.state.Clone()
	changed, err := next.MergeChecked(msg.Entries, a.clock)
	if err != nil {
		a.mu.Unlock()
		a.cfg.Metrics.rejected.Inc()
		a.log.Info("ignoring a twin message", "error", err.Error())
		return
	}
	if len(changed) == 0 {
		a.mu.Unlock()
		return
	}
	delta := twin.State{}
	for _, k := range changed {
		delta[k] = next[k]
	}
	if err := a.store.Save(delta, a.clock.Last()); err != nil {
		a.mu.Unlock()
		a.log.Error(err, "persisting the twin; the change will come again on the next sync")
		return
	}
	a.state = next
	a.cfg.Metrics.twinChanges.Add(float64(len(changed)))
	desired := a.state.Values(desiredPrefix)
	desiredChanged := false
	for _, k := range changed {
		desiredChanged = desiredChanged || strings.HasPrefix(k, desiredPrefix)
		if k == protocol.PacketFiltersKey {
			select {
			case a.filterChanged <- struct{}{}:
			default:
			}
		}
		if k == protocol.OTAKey && a.ota != nil {
			a.ota.notify()
		}
	}
	a.mu.Unlock()
	if desiredChanged && a.cfg.OnDesired != nil {
		a.cfg.OnDesired(desired)
	}
}

// SetReported records a reported property; it reaches the hub now if
// connected, or on the next connection.
func (a *Agent) SetReported(ctx context.Context, name string, value json.RawMessage) error {
	return a.write(ctx, reportedPrefix+name, value, false)
}

// SetDesired overrides a desired property on the device (a local control,
// say); it wins over the cluster's value if it is the later write.
func (a *Agent) SetDesired(ctx context.Context, name string, value json.RawMessage) error {
	return a.write(ctx, desiredPrefix+name, value, false)
}

// DeleteReported removes a reported property.
func (a *Agent) DeleteReported(ctx context.Context, name string) error {
	return a.write(ctx, reportedPrefix+name, nil, true)
}

func (a *Agent) write(ctx context.Context, key string, value json.RawMessage, del bool) error {
	ctx, span := tracer.Start(ctx, "edge-agent.WriteTwin", trace.WithAttributes(attribute.String("device", a.cfg.Device.String()), attribute.String("key", key)))
	defer span.End()
	a.mu.Lock()
	next := a.state.Clone()
	var e twin.Entry
	var err error
	if del {
		e, err = next.Delete(a.clock, key)
	} else {
		e, err = next.Set(a.clock, key, value)
	}
	if err == nil {
		err = a.store.Save(twin.State{key: e}, a.clock.Last())
	}
	if err != nil {
		a.mu.Unlock()
		return err
	}
	a.state = next
	connected := a.connected
	a.mu.Unlock()
	if connected {
		a.publishTwin(ctx, twin.Message{Kind: twin.KindDelta, From: a.cfg.Device.String(), Entries: twin.State{key: e}})
	}
	return nil
}

// Desired returns the desired properties.
func (a *Agent) Desired() map[string]json.RawMessage {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state.Values(desiredPrefix)
}

// Reported returns the reported properties.
func (a *Agent) Reported() map[string]json.RawMessage {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.state.Values(reportedPrefix))
}

// SetEBPF records the packet filter's state for the next heartbeat.
func (a *Agent) SetEBPF(st protocol.EBPFState) {
	a.mu.Lock()
	was := a.ebpf != nil && a.ebpf.Active
	a.ebpf = &st
	a.mu.Unlock()
	switch {
	case !was && st.Active:
		a.cfg.Metrics.ebpfActive.Inc()
	case was && !st.Active:
		a.cfg.Metrics.ebpfActive.Dec()
	}
}

func (a *Agent) publishState(ctx context.Context, online bool) {
	a.mu.Lock()
	st := protocol.DeviceState{Online: online, AgentVersion: a.cfg.Version, Time: a.cfg.Now(), EBPF: a.ebpf}
	a.mu.Unlock()
	b, err := json.Marshal(st)
	if err == nil {
		a.publish(ctx, a.cfg.Device.Topic(protocol.State), b)
	}
}

func (a *Agent) publishTwin(ctx context.Context, msg twin.Message) {
	b, err := msg.Encode()
	if err != nil {
		a.log.Error(err, "encoding the twin")
		return
	}
	a.publish(ctx, a.cfg.Device.Topic(protocol.TwinUp), b)
}

// publish sends at QoS 1 without blocking the caller for long; what does
// not get through is sent again by the full exchange of the next
// connection.
func (a *Agent) publish(ctx context.Context, topic string, payload []byte) {
	_ = a.publishQoS(ctx, topic, payload, 1)
}

var errOffline = errors.New("not connected to the hub")

func (a *Agent) publishQoS(ctx context.Context, topic string, payload []byte, qos byte) error {
	a.mu.Lock()
	cm := a.cm
	a.mu.Unlock()
	if cm == nil {
		return errOffline
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p := &paho.Publish{Topic: topic, QoS: qos, Payload: payload, Properties: protocol.TraceProperties(ctx)}
	if _, err := cm.Publish(pctx, p); err != nil {
		a.cfg.Metrics.publishErrors.Inc()
		a.log.V(1).Info("publish failed", "topic", topic, "error", err.Error())
		return err
	}
	a.cfg.Metrics.sent.WithLabelValues(strings.TrimPrefix(topic, a.cfg.Device.Prefix())).Inc()
	return nil
}

// runPacketFilter applies rule changes and publishes counters until ctx
// ends.
func (a *Agent) runPacketFilter(ctx context.Context, pf *packetFilter) {
	tick, stop := pf.ticker(a.cfg.MetricsInterval)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.filterChanged:
			pf.update()
		case <-tick:
			pf.report(ctx)
		}
	}
}
