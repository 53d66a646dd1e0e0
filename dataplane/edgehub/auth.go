package edgehub

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/cairn-platform/cairn/edge-agent/protocol"
)

// authHook authenticates devices and joining agents against their Secrets
// and confines every client to its own topics.
type authHook struct {
	mqtt.HookBase
	hub *Hub
}

func (h *authHook) ID() string { return "cairn-auth" }

func (h *authHook) Provides(b byte) bool {
	return bytes.IndexByte([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablished, mqtt.OnDisconnect}, b) >= 0
}

// identity is what a client was authenticated as.
type identity struct {
	device protocol.Device
	// joining clients may only ask for their credential.
	joining bool
	// credHash is the hash of the credential a device connected with.
	credHash string
}

// OnConnectAuthenticate accepts a device connecting with its credential
// (username "<namespace>/<name>", client id equal to it, so no device can
// take over another's session), or an agent joining with its bootstrap
// token (username protocol.JoinUsername, password
// "<namespace>/<name>:<token>").
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if cl.Net.Inline {
		return true
	}
	ctx := context.Background()
	user, password := string(pk.Connect.Username), string(pk.Connect.Password)
	if user == protocol.JoinUsername {
		name, token, ok := strings.Cut(password, ":")
		dev, err := protocol.ParseDevice(name)
		if !ok || err != nil || !h.hub.creds.checkBootstrap(ctx, dev, token) {
			h.hub.metrics.authFailures.WithLabelValues("join").Inc()
			h.hub.log.Info("join refused", "device", name, "client", cl.ID, "remote", cl.Net.Remote)
			return false
		}
		h.hub.identities.Store(cl.ID, identity{device: dev, joining: true})
		return true
	}
	dev, err := protocol.ParseDevice(user)
	if err != nil || cl.ID != user || !h.hub.creds.checkCredential(ctx, dev, password) {
		h.hub.metrics.authFailures.WithLabelValues("device").Inc()
		h.hub.log.Info("device refused", "username", user, "client", cl.ID, "remote", cl.Net.Remote)
		return false
	}
	h.hub.identities.Store(cl.ID, identity{device: dev, credHash: hashCredential(password)})
	return true
}

// OnACLCheck lets a device use only its own topics, and a joining agent
// only its join topics.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	v, ok := h.hub.identities.Load(cl.ID)
	if !ok {
		return false
	}
	id := v.(identity)
	var allowed bool
	switch {
	case id.joining && write:
		allowed = topic == id.device.JoinRequestTopic()
	case id.joining:
		allowed = topic == id.device.JoinResponseTopic()
	case write:
		allowed = id.device.MayPublish(topic)
	default:
		allowed = id.device.MaySubscribe(topic)
	}
	if !allowed {
		h.hub.metrics.aclDenials.Inc()
		h.hub.log.Info("topic refused", "device", id.device.String(), "topic", topic, "write", write)
	}
	return allowed
}

// OnSessionEstablished marks a device online.
func (h *authHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if v, ok := h.hub.identities.Load(cl.ID); ok && !v.(identity).joining {
		h.hub.connected(v.(identity).device, cl)
	}
}

// OnDisconnect marks a device offline, unless a newer connection of the
// same device took over.
func (h *authHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if v, ok := h.hub.identities.Load(cl.ID); ok {
		id := v.(identity)
		if id.joining {
			// Join client ids are random: forget them. (A device's entry
			// stays; a newer session of it may already have replaced it.)
			h.hub.identities.Delete(cl.ID)
			return
		}
		h.hub.disconnected(id.device, cl)
	}
}

// hashCredential is what the hub stores of a credential.
func hashCredential(credential string) string {
	sum := sha256.Sum256([]byte(credential))
	return hex.EncodeToString(sum[:])
}

func equalSecret(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
