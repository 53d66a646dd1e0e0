package edgehub

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/cairn-platform/cairn/edge-agent/protocol"
)

// ExternalBroker makes the hub a client of a Mosquitto broker with the
// dynamic security plugin, instead of embedding one. Devices use the same
// topics; the broker enforces credentials and ACLs, which the hub manages
// through the plugin's $CONTROL API: one client and one role per device,
// plus a shared join account that may only send join requests and read
// (sealed) answers.
type ExternalBroker struct {
	// URL of the broker: mqtt://host:port.
	URL *url.URL
	// Username and Password of the hub's account; it needs the plugin's
	// admin role (mosquitto_ctrl dynsec init creates one).
	Username, Password string
	// JoinPassword is set on the shared join account (protocol.JoinUsername)
	// at start; agents pass it with --join-password.
	JoinPassword string
}

const (
	dynsecTopic         = "$CONTROL/dynamic-security/v1"
	dynsecResponseTopic = dynsecTopic + "/response"
	hubRole             = "cairn-hub"
	joinRole            = "cairn-join"
)

// external is the hub's connection to an external broker.
type external struct {
	h   *Hub
	cfg ExternalBroker
	cm  *autopaho.ConnectionManager
	up  chan struct{}
}

// startExternal connects to the broker, sets up the hub's and the join
// account's roles, and subscribes to the device and join topics.
func (h *Hub) startExternal(ctx context.Context, cfg ExternalBroker) error {
	x := &external{h: h, cfg: cfg, up: make(chan struct{}, 1)}
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{cfg.URL},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         3600,
		ReconnectBackoff:              autopaho.NewConstantBackoff(2 * time.Second),
		ConnectUsername:               cfg.Username,
		ConnectPassword:               []byte(cfg.Password),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go x.connectionUp(ctx, cm)
		},
		OnConnectError: func(err error) {
			h.log.Info("connecting to the external broker failed", "broker", cfg.URL.Redacted(), "error", err.Error())
		},
		ClientConfig: paho.ClientConfig{
			ClientID: "cairn-edge-hub",
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					x.received(protocol.TraceFromPublish(pr.Packet), pr.Packet.Topic, pr.Packet.Payload)
					return true, nil
				},
			},
		},
	})
	if err != nil {
		return fmt.Errorf("connecting to the external broker %s: %w", cfg.URL.Redacted(), err)
	}
	x.cm = cm
	h.external = x
	select {
	case <-x.up:
	case <-ctx.Done():
	}
	return nil
}

func (x *external) connectionUp(ctx context.Context, cm *autopaho.ConnectionManager) {
	// The hub's own role, then the join account: both are idempotent
	// (errors for objects that exist are logged and harmless).
	if err := x.control(ctx, cm,
		cmd{"command": "createRole", "rolename": hubRole, "acls": []cmd{
			{"acltype": "publishClientSend", "topic": protocol.Root + "/#", "allow": true},
			{"acltype": "publishClientReceive", "topic": protocol.Root + "/#", "allow": true},
			{"acltype": "subscribePattern", "topic": protocol.Root + "/#", "allow": true},
		}},
		cmd{"command": "addClientRole", "username": x.cfg.Username, "rolename": hubRole, "priority": 10},
		cmd{"command": "createRole", "rolename": joinRole, "acls": []cmd{
			{"acltype": "publishClientSend", "topic": protocol.Root + "/join/+/+/req", "allow": true},
			{"acltype": "publishClientReceive", "topic": protocol.Root + "/join/+/+/down", "allow": true},
			{"acltype": "subscribePattern", "topic": protocol.Root + "/join/+/+/down", "allow": true},
		}},
		cmd{"command": "createClient", "username": protocol.JoinUsername, "password": x.cfg.JoinPassword, "roles": []cmd{{"rolename": joinRole}}},
		cmd{"command": "setClientPassword", "username": protocol.JoinUsername, "password": x.cfg.JoinPassword},
	); err != nil {
		x.h.log.Error(err, "setting up the hub's and the join account's roles")
	}
	subs := []paho.SubscribeOptions{
		{Topic: dynsecResponseTopic, QoS: 1},
		{Topic: protocol.DeviceTopicFilter, QoS: 1},
		{Topic: protocol.JoinTopicFilter, QoS: 1},
	}
	if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs}); err != nil {
		x.h.log.Error(err, "subscribing on the external broker")
		return
	}
	x.h.log.Info("edge hub connected to the external broker", "broker", x.cfg.URL.Redacted())
	select {
	case x.up <- struct{}{}:
	default:
	}
}

func (x *external) received(ctx context.Context, topic string, payload []byte) {
	switch {
	case topic == dynsecResponseTopic:
		x.logControlErrors(payload)
	case strings.HasPrefix(topic, protocol.Root+"/join/"):
		x.h.handleJoin(ctx, topic, payload)
	default:
		x.h.handleDeviceMessage(ctx, topic, payload)
	}
}

// grant creates (or replaces) the device's broker account with its
// credential and a role confined to its topics.
func (x *external) grant(ctx context.Context, dev protocol.Device, credential string) error {
	p := dev.Prefix()
	role := deviceRole(dev)
	return x.control(ctx, x.cm,
		cmd{"command": "createRole", "rolename": role, "acls": []cmd{
			{"acltype": "publishClientSend", "topic": p + "+/down", "priority": 10, "allow": false},
			{"acltype": "publishClientSend", "topic": p + "#", "allow": true},
			{"acltype": "publishClientReceive", "topic": p + "#", "allow": true},
			{"acltype": "subscribePattern", "topic": p + "#", "allow": true},
		}},
		cmd{"command": "deleteClient", "username": dev.String()},
		cmd{"command": "createClient", "username": dev.String(), "clientid": dev.String(), "password": credential, "roles": []cmd{{"rolename": role}}},
	)
}

// revoke deletes the device's broker account; the plugin disconnects it.
func (x *external) revoke(ctx context.Context, dev protocol.Device) error {
	return x.control(ctx, x.cm, cmd{"command": "deleteClient", "username": dev.String()})
}

func (x *external) publish(ctx context.Context, topic string, payload []byte) error {
	_, err := x.cm.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload, Properties: protocol.TraceProperties(ctx)})
	return err
}

type cmd = map[string]any

// control sends dynamic security commands; the broker runs them in order
// and answers on the response topic, where errors are logged. It waits for
// the connection and retries: a lost revocation would leave a device in.
func (x *external) control(ctx context.Context, cm *autopaho.ConnectionManager, commands ...cmd) error {
	b, err := json.Marshal(map[string]any{"commands": commands})
	if err != nil {
		return fmt.Errorf("encoding dynamic security commands: %w", err)
	}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = cm.AwaitConnection(actx)
		if err == nil {
			_, err = cm.Publish(actx, &paho.Publish{Topic: dynsecTopic, QoS: 1, Payload: b})
		}
		cancel()
		if err == nil {
			return nil
		}
		if attempt == 3 || ctx.Err() != nil {
			return fmt.Errorf("sending dynamic security commands: %w", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// logControlErrors logs failed commands, except the expected ones of
// idempotent setup.
func (x *external) logControlErrors(payload []byte) {
	var resp struct {
		Responses []struct {
			Command string `json:"command"`
			Error   string `json:"error"`
		} `json:"responses"`
	}
	if err := json.Unmarshal(payload, &resp); err != nil {
		return
	}
	for _, r := range resp.Responses {
		if r.Error == "" || strings.Contains(r.Error, "already") || (r.Command == "deleteClient" && strings.Contains(r.Error, "not found")) {
			continue
		}
		x.h.log.Info("dynamic security command failed", "command", r.Command, "error", r.Error)
	}
}

func deviceRole(dev protocol.Device) string { return "cairn-device-" + dev.Namespace + "-" + dev.Name }
