package edgehub

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/controllers/edge"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
	"github.com/cairn-platform/cairn/edge-agent/twin"
	"github.com/cairn-platform/cairn/internal/conditions"
)

// Reasons of the Online condition, which the hub owns.
const (
	ReasonConnected    = "Connected"
	ReasonDisconnected = "Disconnected"
)

// statusWriters bounds concurrent status patches.
const statusWriters = 8

// lastSeenResolution: lastSeen alone (a heartbeat with nothing new) is
// written at most this often, to spare the API server at fleet scale
// (10,000 devices with 30 s heartbeats would otherwise cost 333 status
// writes a second). Online changes are written at once.
const lastSeenResolution = 5 * time.Minute

func (h *Hub) flushLoop(ctx context.Context) {
	t := time.NewTicker(h.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.wake:
			// Batch what arrives together.
			select {
			case <-ctx.Done():
				return
			case <-time.After(h.opts.BatchDelay):
			}
		}
		h.flush(ctx)
	}
}

// flush writes the status of every dirty device; a failed write keeps the
// device dirty for the next round.
func (h *Hub) flush(ctx context.Context) {
	h.mu.Lock()
	devs := slices.Collect(maps.Keys(h.dirty))
	clear(h.dirty)
	h.mu.Unlock()
	if len(devs) == 0 {
		return
	}
	work := make(chan protocol.Device)
	var wg sync.WaitGroup
	for range min(statusWriters, len(devs)) {
		wg.Go(func() {
			for dev := range work {
				if err := h.writeStatus(ctx, dev); err != nil {
					h.metrics.statusWrites.WithLabelValues("error").Inc()
					if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
						h.log.Error(err, "writing device status", "device", dev.String())
					}
					if !apierrors.IsNotFound(err) {
						h.mu.Lock()
						h.markDirtyLocked(dev) // and wake the flusher: a conflict is retried at once
						h.mu.Unlock()
					}
				}
			}
		})
	}
	for _, dev := range devs {
		work <- dev
	}
	close(work)
	wg.Wait()
}

// writeStatus patches dev's status from the hub's view, with optimistic
// locking: the EdgeDevice controller writes other conditions of the same
// list.
func (h *Hub) writeStatus(ctx context.Context, dev protocol.Device) error {
	var obj edgev1alpha1.EdgeDevice
	if err := h.opts.Client.Get(ctx, objectKey(dev), &obj); err != nil {
		return err
	}
	base := obj.DeepCopy()
	h.mu.Lock()
	d, ok := h.devices[dev]
	if !ok {
		h.mu.Unlock()
		return nil
	}
	h.applyStatusLocked(&obj, d)
	h.mu.Unlock()

	patch := client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
	data, err := patch.Data(&obj)
	if err != nil {
		return fmt.Errorf("computing status patch: %w", err)
	}
	if isOnlyResourceVersion(data) {
		return nil
	}
	if err := h.opts.Client.Status().Patch(ctx, &obj, patch); err != nil {
		return err
	}
	h.metrics.statusWrites.WithLabelValues("ok").Inc()
	return nil
}

// applyStatusLocked sets the fields the hub owns; h.mu is held.
func (h *Hub) applyStatusLocked(obj *edgev1alpha1.EdgeDevice, d *device) {
	st := &obj.Status
	if d.loaded {
		st.Reported = toJSONMap(d.state.Values(ReportedPrefix))
		st.Desired = toJSONMap(d.state.Values(DesiredPrefix))
		st.Twin = statusFromState(d.state, d.specHash)
		if fw := firmwareStatus(d.state); fw != nil {
			st.Firmware = fw
		}
	}
	if !d.lastSeen.IsZero() && (st.LastSeen == nil || d.lastSeen.Sub(st.LastSeen.Time) >= lastSeenResolution || d.online != conditions.IsTrue(st.Conditions, edge.ConditionOnline)) {
		st.LastSeen = &metav1.Time{Time: d.lastSeen.Truncate(time.Second)}
		d.lastSeenWritten = d.lastSeen
	}
	if d.agentVersion != "" {
		st.AgentVersion = d.agentVersion
	}
	if d.ebpf != nil {
		st.EBPF = &edgev1alpha1.EBPFStatus{Active: d.ebpf.Active, Reason: d.ebpf.Reason}
	}
	switch {
	case d.online:
		conditions.True(&st.Conditions, obj.Generation, edge.ConditionOnline, ReasonConnected, fmt.Sprintf("connected to the edge hub from %s", d.remote))
	case !d.offlineSince.IsZero():
		conditions.False(&st.Conditions, obj.Generation, edge.ConditionOnline, ReasonDisconnected, fmt.Sprintf("the MQTT session ended at %s", d.offlineSince.UTC().Format(time.RFC3339)))
	}
}

// firmwareStatus reads the device's FirmwareState; nil when it has none or
// it does not parse (the agent is the only writer of that key).
func firmwareStatus(s twin.State) *edgev1alpha1.DeviceFirmware {
	e, ok := s[protocol.FirmwareStatusKey]
	if !ok || e.Deleted {
		return nil
	}
	var fs protocol.FirmwareState
	if err := json.Unmarshal(e.Value, &fs); err != nil {
		return nil
	}
	out := &edgev1alpha1.DeviceFirmware{
		Version: fs.Version, Slot: fs.Slot, SHA256: fs.SHA256, Rollout: fs.Rollout, Action: fs.Action,
		Phase: fs.Phase, Progress: fs.Progress, Delta: fs.Delta, Message: fs.Message,
	}
	if fs.Slot != "A" && fs.Slot != "B" {
		out.Slot = ""
	}
	if fs.Phase == protocol.PhaseVerifying {
		out.Pending = fs.Version
	}
	if !fs.Time.IsZero() {
		out.UpdatedAt = &metav1.Time{Time: fs.Time.Truncate(time.Second)}
	}
	return out
}

// isOnlyResourceVersion tells an empty optimistic-lock patch.
func isOnlyResourceVersion(patch []byte) bool {
	var m map[string]any
	if err := json.Unmarshal(patch, &m); err != nil {
		return false
	}
	meta, _ := m["metadata"].(map[string]any)
	return len(m) == 1 && len(meta) == 1 && meta["resourceVersion"] != nil
}

func toJSONMap(values map[string]json.RawMessage) map[string]apiextensionsv1.JSON {
	if len(values) == 0 {
		return nil
	}
	out := make(map[string]apiextensionsv1.JSON, len(values))
	for k, v := range values {
		out[k] = apiextensionsv1.JSON{Raw: v}
	}
	return out
}

// statusFromState writes the CRDT to status.twin, sorted by key.
func statusFromState(s twin.State, specHash map[string]string) []edgev1alpha1.TwinEntry {
	out := make([]edgev1alpha1.TwinEntry, 0, len(s))
	for _, key := range slices.Sorted(maps.Keys(s)) {
		e := s[key]
		te := edgev1alpha1.TwinEntry{Key: key, Stamp: e.Stamp.String(), Deleted: e.Deleted, SpecHash: specHash[key]}
		if !e.Deleted {
			te.Value = &apiextensionsv1.JSON{Raw: e.Value}
		}
		out = append(out, te)
	}
	return out
}

// stateFromStatus reads status.twin back.
func stateFromStatus(entries []edgev1alpha1.TwinEntry) (twin.State, map[string]string, error) {
	s, specHash := twin.State{}, map[string]string{}
	for _, te := range entries {
		stamp, err := twin.ParseStamp(te.Stamp)
		if err != nil {
			return nil, nil, fmt.Errorf("status.twin %q: %w", te.Key, err)
		}
		e := twin.Entry{Stamp: stamp, Deleted: te.Deleted}
		if te.Value != nil && !te.Deleted {
			e.Value = te.Value.Raw
		}
		s[te.Key] = e
		if te.SpecHash != "" {
			specHash[te.Key] = te.SpecHash
		}
	}
	return s, specHash, nil
}

func objectKey(dev protocol.Device) types.NamespacedName {
	return types.NamespacedName{Namespace: dev.Namespace, Name: dev.Name}
}
