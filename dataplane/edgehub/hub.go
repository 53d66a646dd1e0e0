// Package edgehub is the manager's MQTT edge hub: an embedded mochi-mqtt v5
// broker whose clients are the fleet's edge agents. It authenticates
// devices against their Secrets, confines each to its topics, hands out
// credentials to joining agents, keeps every device's twin (a CRDT, see
// edge-agent/twin) merged with spec.desired, and writes what devices report
// to EdgeDevice status.
package edgehub

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/crypto/nacl/box"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/cairn-platform/cairn/edge-agent/protocol"
	"github.com/cairn-platform/cairn/edge-agent/twin"
	"github.com/cairn-platform/cairn/internal/kube"
)

// HubNode is the hub's writer id in twin stamps.
const HubNode = "hub"

// Options configure a Hub.
type Options struct {
	// TCPListener serves MQTT over TCP; nil with TCPAddress set listens
	// there.
	TCPListener net.Listener
	TCPAddress  string
	// WebSocketAddress serves MQTT over WebSocket (path /); empty disables.
	WebSocketAddress string
	// DataDir persists sessions, subscriptions and in-flight QoS 1
	// messages (bbolt); empty keeps them in memory.
	DataDir string
	// Client reads EdgeDevices and Secrets (cached) and writes status and
	// credential Secrets.
	Client client.Client
	// APIReader reads through the cache.
	APIReader client.Reader
	Log       logr.Logger
	// FlushInterval is the period of the status writer (default 500ms);
	// a change wakes it earlier, after BatchDelay (default 50ms), so that
	// what arrives together is written together.
	FlushInterval time.Duration
	BatchDelay    time.Duration
	// Registerer takes the hub's metrics; nil skips them.
	Registerer prometheus.Registerer
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
	// External, when set, replaces the embedded broker: the listeners and
	// DataDir are unused.
	External *ExternalBroker
}

// Hub is the edge hub. Start it with a manager (it needs leader election:
// one hub holds the twins).
type Hub struct {
	opts       Options
	log        logr.Logger
	server     *mqtt.Server
	creds      *credentials
	clock      *twin.Clock
	metrics    *metrics
	identities sync.Map // client id -> identity
	// publisher is the inline client the hub publishes as (mochi's own
	// Publish cannot carry user properties).
	publisher *mqtt.Client
	tcpAddr   net.Addr
	external  *external

	mu      sync.Mutex
	devices map[protocol.Device]*device
	online  int // devices with d.online
	dirty   map[protocol.Device]struct{}
	wake    chan struct{}
}

// New builds a hub; nothing listens until Start.
func New(opts Options) (*Hub, error) {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 500 * time.Millisecond
	}
	if opts.BatchDelay <= 0 {
		opts.BatchDelay = min(50*time.Millisecond, opts.FlushInterval)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Hub{
		opts:    opts,
		log:     opts.Log.WithName("edgehub"),
		creds:   &credentials{cached: opts.Client, reader: opts.APIReader},
		clock:   twin.NewClock(HubNode, opts.Now, 0),
		metrics: newMetrics(opts.Registerer),
		devices: map[protocol.Device]*device{},
		dirty:   map[protocol.Device]struct{}{},
		wake:    make(chan struct{}, 1),
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = protocol.MaxPayloadBytes + 4<<10
	h.server = mqtt.New(&mqtt.Options{
		InlineClient: true,
		Capabilities: caps,
		Logger:       slog.New(logr.ToSlogHandler(h.log.WithName("mqtt").V(1))),
	})
	h.publisher = h.server.NewClient(nil, "local", "cairn-edge-hub", true)
	h.publisher.Properties.ProtocolVersion = 5
	if err := h.server.AddHook(&authHook{hub: h}, nil); err != nil {
		return nil, fmt.Errorf("adding the auth hook: %w", err)
	}
	if opts.DataDir != "" {
		if err := h.server.AddHook(sessionStore{new(bolt.Hook)}, &bolt.Options{
			Path:    filepath.Join(opts.DataDir, "sessions.db"),
			Options: &bbolt.Options{Timeout: 5 * time.Second},
		}); err != nil {
			return nil, fmt.Errorf("opening the session store in %s: %w", opts.DataDir, err)
		}
	}
	return h, nil
}

// NeedLeaderElection is true: the twins live in one hub.
func (h *Hub) NeedLeaderElection() bool { return true }

// TCPAddr is the address the TCP listener is bound to, once started.
func (h *Hub) TCPAddr() net.Addr { return h.tcpAddr }

// Start serves MQTT until ctx ends, and writes device status meanwhile.
func (h *Hub) Start(ctx context.Context) error {
	serve := h.serveEmbedded
	if h.opts.External != nil {
		serve = h.serveExternal
	}
	stop, err := serve(ctx)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { defer close(done); h.flushLoop(ctx) }()
	if h.external != nil {
		go h.sweep(ctx)
	}
	<-ctx.Done()
	err = stop()
	<-done
	// What arrived last, within the manager's shutdown grace period.
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.flush(fctx)
	return err
}

// serveExternal connects to the external broker; stop disconnects.
func (h *Hub) serveExternal(ctx context.Context) (stop func() error, err error) {
	if err := h.startExternal(ctx, *h.opts.External); err != nil {
		return nil, err
	}
	return func() error {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = h.external.cm.Disconnect(dctx)
		return nil
	}, nil
}

// serveEmbedded starts the embedded broker's listeners; stop closes it.
func (h *Hub) serveEmbedded(context.Context) (stop func() error, err error) {
	ln := h.opts.TCPListener
	if ln == nil && h.opts.TCPAddress != "" {
		if ln, err = net.Listen("tcp", h.opts.TCPAddress); err != nil {
			return nil, fmt.Errorf("listening for MQTT on %s: %w", h.opts.TCPAddress, err)
		}
	}
	if ln != nil {
		h.tcpAddr = ln.Addr()
		if err := h.server.AddListener(listeners.NewNet("tcp", ln)); err != nil {
			return nil, fmt.Errorf("adding the TCP listener: %w", err)
		}
	}
	if h.opts.WebSocketAddress != "" {
		if err := h.server.AddListener(listeners.NewWebsocket(listeners.Config{ID: "ws", Address: h.opts.WebSocketAddress})); err != nil {
			return nil, fmt.Errorf("adding the WebSocket listener: %w", err)
		}
	}
	onDevice := func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		h.handleDeviceMessage(traceContext(pk), pk.TopicName, pk.Payload)
	}
	onJoin := func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		h.handleJoin(traceContext(pk), pk.TopicName, pk.Payload)
	}
	if err := h.server.Subscribe(protocol.DeviceTopicFilter, 1, onDevice); err != nil {
		return nil, fmt.Errorf("subscribing to device topics: %w", err)
	}
	if err := h.server.Subscribe(protocol.JoinTopicFilter, 2, onJoin); err != nil {
		return nil, fmt.Errorf("subscribing to join topics: %w", err)
	}
	if err := h.server.Serve(); err != nil {
		return nil, fmt.Errorf("starting the MQTT server: %w", err)
	}
	h.log.Info("edge hub serving", "tcp", h.tcpAddr, "websocket", h.opts.WebSocketAddress)
	return func() error {
		if err := h.server.Close(); err != nil {
			return fmt.Errorf("closing the MQTT server: %w", err)
		}
		return nil
	}, nil
}

// handleJoin answers a join request with a fresh credential, sealed to the
// agent's key. The embedded broker let only a client that presented this
// device's bootstrap token publish here; the token in the request is
// checked in every case (an external broker's join account is shared).
func (h *Hub) handleJoin(ctx context.Context, topic string, payload []byte) {
	dev, err := joinDevice(topic)
	if err != nil {
		h.log.Info("ignoring join message", "topic", topic, "error", err.Error())
		return
	}
	ctx, span := tracer.Start(ctx, "edgehub.Join", trace.WithAttributes(attribute.String("device", dev.String())))
	defer span.End()
	var req protocol.JoinRequest
	if err := json.Unmarshal(payload, &req); err != nil || len(req.PublicKey) != 32 {
		h.metrics.authFailures.WithLabelValues("join").Inc()
		h.publishJSON(ctx, dev.JoinResponseTopic(), protocol.JoinResponse{Error: "malformed join request: it needs the token and a 32-byte X25519 publicKey"})
		return
	}
	if !h.creds.checkBootstrap(ctx, dev, req.Token) {
		h.metrics.authFailures.WithLabelValues("join").Inc()
		h.log.Info("join refused: wrong bootstrap token", "device", dev.String())
		h.publishJSON(ctx, dev.JoinResponseTopic(), protocol.JoinResponse{Error: "the bootstrap token is not valid for this device"})
		return
	}
	credential, err := h.creds.issue(ctx, dev)
	if err != nil {
		h.log.Error(err, "issuing a device credential", "device", dev.String())
		h.publishJSON(ctx, dev.JoinResponseTopic(), protocol.JoinResponse{Error: "the hub could not issue a credential; try again"})
		return
	}
	if h.external != nil {
		if err := h.external.grant(ctx, dev, credential); err != nil {
			h.log.Error(err, "registering the device with the external broker", "device", dev.String())
			h.publishJSON(ctx, dev.JoinResponseTopic(), protocol.JoinResponse{Error: "the hub could not register the device with the broker; try again"})
			return
		}
	}
	var key [32]byte
	copy(key[:], req.PublicKey)
	sealed, err := box.SealAnonymous(nil, []byte(credential), &key, rand.Reader)
	if err != nil {
		h.log.Error(err, "sealing the credential", "device", dev.String())
		return
	}
	h.metrics.joins.Inc()
	h.log.Info("device joined", "device", dev.String(), "agentVersion", req.AgentVersion)
	h.publishJSON(ctx, dev.JoinResponseTopic(), protocol.JoinResponse{SealedCredential: sealed})
}

// disconnectDevice ends dev's session, if connected: its credential was
// revoked or replaced. Behind an external broker its account is deleted.
func (h *Hub) disconnectDevice(dev protocol.Device, why string) {
	if h.external != nil {
		h.log.Info("revoking device on the external broker", "device", dev.String(), "reason", why)
		if err := h.external.revoke(context.Background(), dev); err != nil {
			h.log.Error(err, "revoking the device on the external broker", "device", dev.String())
		}
		return
	}
	cl, ok := h.server.Clients.Get(dev.String())
	if !ok || cl.Closed() {
		return
	}
	h.log.Info("disconnecting device", "device", dev.String(), "reason", why)
	if err := h.server.DisconnectClient(cl, packets.ErrNotAuthorized); err != nil && !errors.Is(err, net.ErrClosed) {
		h.log.Info("disconnecting device failed", "device", dev.String(), "error", err.Error())
	}
}

// enforceCredential cuts a device off when its credential Secret is gone
// or replaced: it cannot come back without joining again. The embedded
// broker disconnects a session that authenticated with another
// credential; an external broker's account is deleted.
func (h *Hub) enforceCredential(ctx context.Context, dev protocol.Device) error {
	_, connected := h.server.Clients.Get(dev.String())
	if h.external == nil && !connected {
		return nil
	}
	key := client.ObjectKey{Namespace: dev.Namespace, Name: CredentialSecretName(dev.Name)}
	var s corev1.Secret
	found, err := kube.GetIfExists(ctx, h.opts.Client, key, &s)
	if err != nil {
		return err
	}
	current := found && (h.external != nil || h.connectedWith(dev, string(s.Data[credentialHashKey])))
	if current {
		return nil // the common case, answered by the cache
	}
	// The cache may lag behind a credential just issued: ask the API
	// server before cutting a device off.
	if found, err = kube.GetIfExists(ctx, h.opts.APIReader, key, &s); err != nil {
		return err
	}
	switch {
	case h.external != nil && !found:
		// An error requeues the reconcile: a revocation must not be lost.
		return h.external.revoke(ctx, dev)
	case h.external == nil && (!found || !h.connectedWith(dev, string(s.Data[credentialHashKey]))):
		h.disconnectDevice(dev, "its credential was revoked or replaced")
	}
	return nil
}

// connectedWith tells whether dev's current session authenticated with the
// credential of hash credHash.
func (h *Hub) connectedWith(dev protocol.Device, credHash string) bool {
	v, ok := h.identities.Load(dev.String())
	return ok && credHash != "" && equalSecret(v.(identity).credHash, credHash)
}

// tracer records the hub's spans.
var tracer = otel.Tracer("github.com/cairn-platform/cairn/dataplane/edgehub")

// traceContext is the context of a received packet's trace, if it has one.
func traceContext(pk packets.Packet) context.Context {
	props := make(map[string]string, len(pk.Properties.User))
	for _, u := range pk.Properties.User {
		props[u.Key] = u.Val
	}
	return protocol.ExtractTrace(context.Background(), props)
}

// kick wakes the status flusher.
func (h *Hub) kick() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}
