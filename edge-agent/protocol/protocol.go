// Package protocol is the MQTT contract between edge agents and the edge
// hub: topic names, who may use them, and the join and state payloads. Twin
// payloads are edge-agent/twin Messages. docs/edge.md describes the same
// scheme for people writing their own agents.
//
// Every device has the topic prefix cairn/v1/d/<namespace>/<name>/. Topics
// ending in /down are written by the hub only; the device subscribes to
// them. Every other topic under the prefix is written by the device only.
package protocol

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Root is the first segment of every Cairn topic; the version is the second.
const Root = "cairn/v1"

// Device topic suffixes (after the device prefix).
const (
	// TwinUp carries twin Messages from the device (QoS 1).
	TwinUp = "twin/up"
	// TwinDown carries twin Messages from the hub (QoS 1).
	TwinDown = "twin/down"
	// State carries State heartbeats and the will message (QoS 1).
	State = "state"
	// Metrics carries pre-aggregated packet metrics (QoS 0).
	Metrics = "metrics"
)

// Usernames other than a device's "<namespace>/<name>".
const (
	// JoinUsername is used, with "<namespace>/<name>:<bootstrap token>" as
	// the password, to ask for the device's credential.
	JoinUsername = "cairn-join"
)

// dnsLabel is a Kubernetes namespace or object name (RFC 1123 subdomain
// minus dots, which topics do not need).
var dnsName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

// Device names one EdgeDevice.
type Device struct {
	Namespace, Name string
}

// ParseDevice reads "<namespace>/<name>".
func ParseDevice(s string) (Device, error) {
	ns, name, ok := strings.Cut(s, "/")
	d := Device{Namespace: ns, Name: name}
	if !ok || !dnsName.MatchString(ns) || !dnsName.MatchString(name) || len(ns) > 63 {
		return d, fmt.Errorf("device %q: want <namespace>/<name> of lowercase letters, digits, '-' and '.'", s)
	}
	return d, nil
}

func (d Device) String() string { return d.Namespace + "/" + d.Name }

// Prefix is the device's topic prefix, with a trailing slash.
func (d Device) Prefix() string { return Root + "/d/" + d.Namespace + "/" + d.Name + "/" }

// Topic is the device topic with suffix.
func (d Device) Topic(suffix string) string { return d.Prefix() + suffix }

// JoinRequestTopic is where a joining agent sends its JoinRequest.
func (d Device) JoinRequestTopic() string {
	return Root + "/join/" + d.Namespace + "/" + d.Name + "/req"
}

// JoinResponseTopic is where the hub answers with a JoinResponse.
func (d Device) JoinResponseTopic() string {
	return Root + "/join/" + d.Namespace + "/" + d.Name + "/down"
}

// DeviceTopicFilter matches every device topic a hub subscribes to.
const DeviceTopicFilter = Root + "/d/+/+/#"

// JoinTopicFilter matches every join request.
const JoinTopicFilter = Root + "/join/+/+/req"

// ParseTopic splits a device topic into the device and the suffix.
func ParseTopic(topic string) (Device, string, error) {
	rest, ok := strings.CutPrefix(topic, Root+"/d/")
	if !ok {
		return Device{}, "", fmt.Errorf("topic %q is not a device topic", topic)
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || parts[2] == "" {
		return Device{}, "", fmt.Errorf("topic %q: want %s/d/<namespace>/<name>/<suffix>", topic, Root)
	}
	d, err := ParseDevice(parts[0] + "/" + parts[1])
	return d, parts[2], err
}

// MayPublish tells whether device d may publish to topic: only to its own
// prefix, and never to a hub topic (ending in /down).
func (d Device) MayPublish(topic string) bool {
	suffix, ok := strings.CutPrefix(topic, d.Prefix())
	return ok && suffix != "" && !strings.HasSuffix(topic, "/down") && !strings.ContainsAny(suffix, "+#")
}

// MaySubscribe tells whether device d may subscribe to filter: only
// within its own prefix.
func (d Device) MaySubscribe(filter string) bool {
	suffix, ok := strings.CutPrefix(filter, d.Prefix())
	return ok && suffix != ""
}

// JoinRequest is what a joining agent sends.
type JoinRequest struct {
	// AgentVersion of the joining agent.
	AgentVersion string `json:"agentVersion"`
	// Token is the device's bootstrap token. The embedded hub also checks
	// it at CONNECT; behind an external broker, where joining agents share
	// one account, this is the only proof.
	Token string `json:"token"`
	// PublicKey is an ephemeral X25519 key (NaCl box): the credential comes
	// back sealed to it, so no other client that can read the answer topic
	// learns it.
	PublicKey []byte `json:"publicKey"`
}

// JoinResponse carries the device credential, or why there is none.
type JoinResponse struct {
	// SealedCredential is the credential sealed to the request's public key
	// (nacl/box SealAnonymous).
	SealedCredential []byte `json:"sealedCredential,omitempty"`
	// Error says why the join was refused.
	Error string `json:"error,omitempty"`
}

// DeviceState is the heartbeat and will payload on the State topic.
type DeviceState struct {
	Online       bool       `json:"online"`
	AgentVersion string     `json:"agentVersion,omitempty"`
	Time         time.Time  `json:"time"`
	EBPF         *EBPFState `json:"ebpf,omitempty"`
}

// EBPFState reports the packet filter.
type EBPFState struct {
	Active bool   `json:"active"`
	Reason string `json:"reason,omitempty"`
}

// MaxPayloadBytes caps every message the hub accepts from a device.
const MaxPayloadBytes = 256 << 10

// ErrNotAuthorized is returned to agents whose credential is refused.
var ErrNotAuthorized = errors.New("not authorized")

// Hub-written twin keys outside desired/ and reported/: configuration the
// device applies but does not edit.
const (
	// ConfigPrefix starts keys only the hub writes.
	ConfigPrefix = "config/"
	// PacketFiltersKey holds the device's []PacketFilter.
	PacketFiltersKey = ConfigPrefix + "packetFilters"
)

// PacketFilter is one EdgeDevice spec.packetFilters rule, as sent to the
// device.
type PacketFilter struct {
	Name      string `json:"name"`
	Action    string `json:"action"`    // Drop | Count
	Direction string `json:"direction"` // Ingress | Egress
	Protocol  string `json:"protocol"`  // TCP | UDP | ICMP | Any
	Port      int32  `json:"port,omitempty"`
	CIDR      string `json:"cidr,omitempty"`
}

// MetricsReport is the pre-aggregated packet counters a device publishes on
// the Metrics topic every interval: counts since the previous report.
type MetricsReport struct {
	Time    time.Time                `json:"time"`
	Traffic []TrafficCount           `json:"traffic,omitempty"`
	Rules   map[string]PacketCounter `json:"rules,omitempty"`
}

// TrafficCount is the traffic of one direction, protocol and port.
type TrafficCount struct {
	Direction string `json:"direction"` // ingress | egress
	Protocol  string `json:"protocol"`  // tcp | udp | icmp | other
	Port      uint16 `json:"port,omitempty"`
	PacketCounter
}

// PacketCounter counts packets and bytes.
type PacketCounter struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}
