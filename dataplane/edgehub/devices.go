package edgehub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
	"github.com/cairn-platform/cairn/edge-agent/twin"
)

// MaxTwinBytes bounds a device's twin, so that the whole twin fits in one
// MQTT message (the full exchange on connect; brokers refuse packets over
// protocol.MaxPayloadBytes, and mosquitto disconnects the sender) and in
// EdgeDevice status, well under the API server's object limit. A device
// message that would grow the twin beyond it is rejected; the device's
// other properties keep syncing.
const MaxTwinBytes = 192 << 10

// twinBytes approximates the size of s in status.twin.
func twinBytes(s twin.State) int {
	n := 0
	for k, e := range s {
		n += len(k) + len(e.Value) + len(e.Stamp.Node) + 96 // field names, stamp digits, hash
	}
	return n
}

// Twin key prefixes.
const (
	DesiredPrefix  = "desired/"
	ReportedPrefix = "reported/"
)

// device is the hub's view of one device.
type device struct {
	// loaded: state and specHash were read from status (or the device has
	// none); until then nothing is merged.
	loaded   bool
	state    twin.State
	specHash map[string]string

	conn         *mqtt.Client
	online       bool
	remote       string
	lastSeen     time.Time
	offlineSince time.Time
	agentVersion string
	ebpf         *protocol.EBPFState
	// heartbeat is the spec's interval, for the external broker's sweep.
	heartbeat time.Duration
	// lastSeenWritten is the lastSeen last written to status.
	lastSeenWritten time.Time
}

// deviceLocked returns dev's entry, creating it; h.mu is held.
func (h *Hub) deviceLocked(dev protocol.Device) *device {
	d, ok := h.devices[dev]
	if !ok {
		d = &device{state: twin.State{}, specHash: map[string]string{}}
		h.devices[dev] = d
	}
	return d
}

// markDirtyLocked queues dev's status for writing; h.mu is held.
func (h *Hub) markDirtyLocked(dev protocol.Device) {
	h.dirty[dev] = struct{}{}
	h.kick()
}

func (h *Hub) connected(dev protocol.Device, cl *mqtt.Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.deviceLocked(dev)
	d.conn, d.remote, d.lastSeen = cl, cl.Net.Remote, h.opts.Now()
	h.setOnlineLocked(d, true)
	h.markDirtyLocked(dev)
}

func (h *Hub) disconnected(dev protocol.Device, cl *mqtt.Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.deviceLocked(dev)
	if d.conn != cl {
		return // a newer session of the device took over
	}
	d.conn, d.offlineSince = nil, h.opts.Now()
	h.setOnlineLocked(d, false)
	h.markDirtyLocked(dev)
}

// setOnlineLocked records a device going on- or offline, keeping the count
// of online devices (fleet-wide, so not recounted); h.mu is held.
func (h *Hub) setOnlineLocked(d *device, online bool) {
	if d.online == online {
		return
	}
	d.online = online
	if online {
		h.online++
	} else {
		h.online--
	}
	h.metrics.connected.Set(float64(h.online))
}

// handleDeviceMessage handles what devices publish. The broker's ACL let
// each device publish only under its own prefix.
func (h *Hub) handleDeviceMessage(ctx context.Context, topic string, payload []byte) {
	dev, suffix, err := protocol.ParseTopic(topic)
	if err != nil || strings.HasSuffix(suffix, "down") {
		return // the hub's own messages, or not a device topic
	}
	h.metrics.messages.WithLabelValues(suffix).Inc()
	if len(payload) > protocol.MaxPayloadBytes {
		h.reject(dev, suffix, fmt.Errorf("payload of %d bytes is over %d", len(payload), protocol.MaxPayloadBytes))
		return
	}
	switch suffix {
	case protocol.TwinUp:
		h.onTwin(ctx, dev, payload)
	case protocol.State:
		h.onState(dev, payload)
	case protocol.Metrics:
		h.onMetrics(dev, payload)
	}
}

// reject counts and logs a message the hub cannot use; the device's
// connection is left alone.
func (h *Hub) reject(dev protocol.Device, suffix string, err error) {
	h.metrics.rejected.WithLabelValues(suffix).Inc()
	h.log.Info("rejected device message", "device", dev.String(), "topic", suffix, "error", err.Error())
}

// onTwin merges a device's twin message. A full message (sent on every
// connect) is answered with the hub's full state, so each side ends up
// with the other's edits.
func (h *Hub) onTwin(ctx context.Context, dev protocol.Device, payload []byte) {
	ctx, span := tracer.Start(ctx, "edgehub.MergeTwin", trace.WithAttributes(attribute.String("device", dev.String())))
	defer span.End()
	msg, err := twin.DecodeMessage(payload, protocol.MaxPayloadBytes)
	if err != nil {
		h.reject(dev, protocol.TwinUp, err)
		return
	}
	for key := range msg.Entries {
		if !strings.HasPrefix(key, DesiredPrefix) && !strings.HasPrefix(key, ReportedPrefix) && key != protocol.FirmwareStatusKey {
			h.reject(dev, protocol.TwinUp, fmt.Errorf("twin key %q: must start with %q or %q, or be %q", key, DesiredPrefix, ReportedPrefix, protocol.FirmwareStatusKey))
			return
		}
	}
	h.mu.Lock()
	d := h.deviceLocked(dev)
	if !d.loaded {
		h.mu.Unlock()
		if err := h.load(context.Background(), dev); err != nil {
			h.reject(dev, protocol.TwinUp, err)
			return
		}
		h.mu.Lock()
		d = h.deviceLocked(dev)
	}
	next := d.state.Clone()
	changed, err := next.MergeChecked(msg.Entries, h.clock)
	if err == nil && len(changed) > 0 && twinBytes(next) > MaxTwinBytes {
		err = fmt.Errorf("the twin would hold %d bytes, over the %d an EdgeDevice status can carry", twinBytes(next), MaxTwinBytes)
	}
	if err != nil {
		h.mu.Unlock()
		h.reject(dev, protocol.TwinUp, err)
		return
	}
	d.state = next
	d.lastSeen = h.opts.Now()
	var reply twin.Message
	if msg.Kind == twin.KindFull {
		reply = twin.Message{Kind: twin.KindFull, From: HubNode, Entries: d.state.Clone()}
	}
	if len(changed) > 0 || d.lastSeen.Sub(d.lastSeenWritten) >= lastSeenResolution {
		h.markDirtyLocked(dev)
	}
	h.mu.Unlock()
	h.metrics.twinChanges.Add(float64(len(changed)))
	if reply.Kind != "" {
		h.publishTwin(ctx, dev, reply)
	}
}

func (h *Hub) onState(dev protocol.Device, payload []byte) {
	var st protocol.DeviceState
	if err := json.Unmarshal(payload, &st); err != nil {
		h.reject(dev, protocol.State, fmt.Errorf("state: %w", err))
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.deviceLocked(dev)
	changed := false
	if st.AgentVersion != "" && st.AgentVersion != d.agentVersion {
		d.agentVersion, changed = st.AgentVersion, true
	}
	if st.EBPF != nil && (d.ebpf == nil || *d.ebpf != *st.EBPF) {
		d.ebpf, changed = st.EBPF, true
	}
	d.lastSeen = h.opts.Now()
	if h.external != nil && d.online != st.Online {
		// Behind an external broker, heartbeats and the will message are
		// the only signs of the session.
		if !st.Online {
			d.offlineSince = d.lastSeen
		}
		h.setOnlineLocked(d, st.Online)
		changed = true
	}
	// A heartbeat that changes nothing only refreshes lastSeen, which is
	// written at most every lastSeenResolution: at fleet scale heartbeats
	// would otherwise turn into a status write each.
	if changed || d.lastSeen.Sub(d.lastSeenWritten) >= lastSeenResolution {
		h.markDirtyLocked(dev)
	}
}

// sweep marks devices offline that missed three heartbeats: behind an
// external broker a lost will message would otherwise leave them online.
func (h *Hub) sweep(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := h.opts.Now()
		h.mu.Lock()
		for dev, d := range h.devices {
			if d.online && d.heartbeat > 0 && now.Sub(d.lastSeen) > 3*d.heartbeat {
				d.offlineSince = now
				h.setOnlineLocked(d, false)
				h.markDirtyLocked(dev)
			}
		}
		h.mu.Unlock()
	}
}

// onMetrics adds a device's packet counters to the hub's metrics, summed
// per namespace to keep their cardinality bounded at fleet scale.
func (h *Hub) onMetrics(dev protocol.Device, payload []byte) {
	var rep protocol.MetricsReport
	if err := json.Unmarshal(payload, &rep); err != nil {
		h.reject(dev, protocol.Metrics, fmt.Errorf("metrics: %w", err))
		return
	}
	for _, t := range rep.Traffic {
		h.metrics.packets.WithLabelValues(dev.Namespace, t.Direction, t.Protocol).Add(float64(t.Packets))
		h.metrics.bytes.WithLabelValues(dev.Namespace, t.Direction, t.Protocol).Add(float64(t.Bytes))
	}
	for rule, c := range rep.Rules {
		h.metrics.ruleHits.WithLabelValues(dev.Namespace, rule).Add(float64(c.Packets))
	}
}

// load reads dev's twin from its status once, so a restarted hub keeps the
// order of earlier edits.
func (h *Hub) load(ctx context.Context, dev protocol.Device) error {
	var obj edgev1alpha1.EdgeDevice
	if err := h.opts.Client.Get(ctx, objectKey(dev), &obj); err != nil {
		return fmt.Errorf("reading EdgeDevice %s: %w", dev, err)
	}
	state, specHash, err := stateFromStatus(obj.Status.Twin)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.deviceLocked(dev)
	if d.loaded {
		return nil
	}
	h.clock.Restore(state.MaxStamp())
	d.state.Merge(state)
	maps.Copy(d.specHash, specHash)
	d.loaded = true
	return nil
}

// SyncSpec stamps what changed in spec.desired since the hub last saw it
// and sends it to the device. A value the device changed later keeps
// winning until the spec value itself changes.
func (h *Hub) SyncSpec(ctx context.Context, obj *edgev1alpha1.EdgeDevice) error {
	dev := protocol.Device{Namespace: obj.Namespace, Name: obj.Name}
	ctx, span := tracer.Start(ctx, "edgehub.SyncSpec", trace.WithAttributes(attribute.String("device", dev.String())))
	defer span.End()
	h.mu.Lock()
	loaded := h.deviceLocked(dev).loaded
	h.mu.Unlock()
	if !loaded {
		if err := h.load(ctx, dev); err != nil {
			return err
		}
	}
	want, err := specEntries(obj)
	if err != nil {
		return err
	}
	h.mu.Lock()
	d := h.deviceLocked(dev)
	if hb, err := time.ParseDuration(string(obj.Spec.HeartbeatInterval)); err == nil {
		d.heartbeat = hb
	}
	delta := twin.State{}
	for _, key := range slices.Sorted(maps.Keys(want)) {
		raw := want[key]
		sum := sha256.Sum256(raw)
		hash := hex.EncodeToString(sum[:])
		if d.specHash[key] == hash {
			continue
		}
		e, err := d.state.Set(h.clock, key, raw)
		if err != nil {
			h.mu.Unlock()
			return fmt.Errorf("%s: %w", key, err)
		}
		d.specHash[key] = hash
		delta[key] = e
	}
	for _, key := range slices.Sorted(maps.Keys(d.specHash)) {
		if _, ok := want[key]; ok {
			continue
		}
		e, err := d.state.Delete(h.clock, key)
		if err != nil {
			h.mu.Unlock()
			return fmt.Errorf("deleting desired %q: %w", key, err)
		}
		delete(d.specHash, key)
		delta[key] = e
	}
	if len(delta) > 0 {
		h.markDirtyLocked(dev)
	}
	h.mu.Unlock()
	if len(delta) > 0 {
		h.publishTwin(ctx, dev, twin.Message{Kind: twin.KindDelta, From: HubNode, Entries: delta})
	}
	return nil
}

// specEntries is what the object puts in the twin: desired properties, the
// packet filter rules under protocol.PacketFiltersKey and the Firmware
// controller's OTA assignment under protocol.OTAKey.
func specEntries(obj *edgev1alpha1.EdgeDevice) (map[string]json.RawMessage, error) {
	want := make(map[string]json.RawMessage, len(obj.Spec.Desired)+2)
	for name, v := range obj.Spec.Desired {
		want[DesiredPrefix+name] = v.Raw
	}
	if raw, ok := obj.Annotations[edgev1alpha1.AnnotationOTAAssignment]; ok {
		var a protocol.OTAAssignment
		if err := json.Unmarshal([]byte(raw), &a); err != nil {
			return nil, fmt.Errorf("annotation %s: %w", edgev1alpha1.AnnotationOTAAssignment, err)
		}
		want[protocol.OTAKey] = json.RawMessage(raw)
	}
	if len(obj.Spec.PacketFilters) > 0 {
		rules := make([]protocol.PacketFilter, 0, len(obj.Spec.PacketFilters))
		for _, r := range obj.Spec.PacketFilters {
			pf := protocol.PacketFilter{Name: r.Name, Action: string(r.Action), Direction: string(r.Direction), Protocol: string(r.Protocol), CIDR: r.CIDR}
			if r.Port != nil {
				pf.Port = *r.Port
			}
			rules = append(rules, pf)
		}
		raw, err := json.Marshal(rules)
		if err != nil {
			return nil, fmt.Errorf("encoding packet filters: %w", err)
		}
		want[protocol.PacketFiltersKey] = raw
	}
	return want, nil
}

// Forget drops a deleted device.
func (h *Hub) Forget(dev protocol.Device) {
	h.mu.Lock()
	if d, ok := h.devices[dev]; ok {
		h.setOnlineLocked(d, false)
	}
	h.identities.Delete(dev.String())
	delete(h.devices, dev)
	delete(h.dirty, dev)
	h.mu.Unlock()
	h.disconnectDevice(dev, "the EdgeDevice was deleted")
}

func (h *Hub) publishTwin(ctx context.Context, dev protocol.Device, msg twin.Message) {
	b, err := msg.Encode()
	if err != nil {
		h.log.Error(err, "encoding twin message", "device", dev.String())
		return
	}
	h.publish(ctx, dev.Topic(protocol.TwinDown), b)
}

func (h *Hub) publishJSON(ctx context.Context, topic string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.log.Error(err, "encoding message", "topic", topic)
		return
	}
	h.publish(ctx, topic, b)
}

// publish sends at QoS 1, with ctx's trace context in the user
// properties; a device that is offline gets it from its persistent session,
// and in any case from the full exchange on connect.
func (h *Hub) publish(ctx context.Context, topic string, payload []byte) {
	var err error
	if h.external != nil {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err = h.external.publish(pctx, topic, payload)
	} else {
		pk := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
			TopicName:   topic,
			Payload:     payload,
			PacketID:    1, // inbound ids of inline publishes are not used, but must be set
		}
		for k, v := range protocol.InjectTrace(ctx) {
			pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: k, Val: v})
		}
		err = h.server.InjectPacket(h.publisher, pk)
	}
	if err != nil {
		h.log.Error(err, "publishing", "topic", topic)
	}
}

func joinDevice(topic string) (protocol.Device, error) {
	rest, ok := strings.CutPrefix(topic, protocol.Root+"/join/")
	if !ok {
		return protocol.Device{}, fmt.Errorf("not a join topic")
	}
	rest, ok = strings.CutSuffix(rest, "/req")
	if !ok {
		return protocol.Device{}, fmt.Errorf("not a join request")
	}
	return protocol.ParseDevice(rest)
}
