// Package rollout decides, from what devices report, which devices a
// Firmware rollout updates next. It is pure: the Firmware controller reads
// the cluster, calls Plan, and writes the assignments and status it
// returns, so every decision is testable without an API server.
//
// The device's OTA annotation (what the controller asked) and its reported
// status.firmware (what the device did) are the truth; the previous status
// contributes only what cannot be observed again: wave membership and
// timestamps. Running Plan twice on the same inputs gives the same result.
package rollout

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
)

// Device is one targeted device (selected and compatible).
type Device struct {
	Name string
	// Firmware is the device's status.firmware (nil before any report).
	Firmware *edgev1alpha1.DeviceFirmware
	// Assignment is the device's current OTA annotation, of any rollout.
	Assignment *protocol.OTAAssignment
}

// Input is everything Plan decides from.
type Input struct {
	Spec edgev1alpha1.FirmwareSpec
	// Rollout identifies this rollout (see ID).
	Rollout string
	// Repository is the OTA server URL devices fetch from.
	Repository string
	Devices    []Device
	// Previous is the status last written.
	Previous edgev1alpha1.FirmwareStatus
	// Window is the maintenance window; nil is always open.
	Window *Window
	Now    time.Time
}

// Event is a transition worth telling people about.
type Event struct {
	Warning bool
	Reason  string
	Message string
}

// Output is what Plan decided.
type Output struct {
	// Status holds waves, counts, per-device phases and the current wave;
	// the caller sets the conditions from the fields below.
	Status edgev1alpha1.FirmwareStatus
	// Assign maps device names to the annotation to write.
	Assign map[string]protocol.OTAAssignment
	Events []Event
	// Halted: a wave crossed the failure threshold.
	Halted bool
	// Complete: every targeted device finished (succeeded, failed or
	// rolled back) and no wave was halted.
	Complete bool
	// Done: complete, and every targeted device runs the version.
	Done bool
	// Waiting says why no device can start now ("" when devices may
	// start or none is left): paused, outside the window, between waves.
	Waiting string
	// RequeueAfter is when the plan changes by itself (window opening,
	// wave pause elapsing); zero when only device reports change it.
	RequeueAfter time.Duration
}

// Reasons of the Progressing condition and events.
const (
	ReasonWaveStarted      = "WaveStarted"
	ReasonWaveSucceeded    = "WaveSucceeded"
	ReasonHalted           = "RolloutHalted"
	ReasonRollingBack      = "RollingBack"
	ReasonDeviceFailed     = "DeviceFailed"
	ReasonDeviceRolledBack = "DeviceRolledBack"
	ReasonComplete         = "RolloutComplete"
	ReasonPaused           = "Paused"
	ReasonOutsideWindow    = "OutsideMaintenanceWindow"
	ReasonWavePause        = "WavePause"
	ReasonDeviceBusy       = "DeviceBusy"
)

// ID is the rollout identifier for a Firmware: its name and the start of
// the image digest, so a changed image is a new rollout.
func ID(name, sha256 string) string {
	if len(sha256) > 12 {
		sha256 = sha256[:12]
	}
	return name + ":" + sha256
}

// member is one device with its wave and observed phase.
type member struct {
	Device
	wave      int
	phase     edgev1alpha1.DevicePhase
	message   string
	from      string
	failure   bool // counts against the failure threshold
	installed bool // running the new version because this rollout put it there
	busy      string
}

// Plan decides the next step of a rollout.
func Plan(in Input) Output {
	out := Output{Assign: map[string]protocol.OTAAssignment{}}
	waves := in.Spec.Rollout.Waves
	members := assignWaves(in)
	prevDevice := map[string]edgev1alpha1.DeviceRolloutStatus{}
	for _, d := range in.Previous.DeviceStatuses {
		prevDevice[d.Name] = d
	}
	timeout := deviceTimeout(in.Spec.Rollout)
	var nextTimeout time.Duration // until the first in-flight device times out
	for i := range members {
		observe(&members[i], in, prevDevice[members[i].Name])
		if timeout > 0 {
			if left := timeOut(&members[i], prevDevice[members[i].Name], timeout, in.Now); left > 0 && (nextTimeout == 0 || left < nextTimeout) {
				nextTimeout = left
			}
		}
	}

	prevWaves := in.Previous.Waves
	if len(prevWaves) != len(waves) || in.Previous.Rollout != in.Rollout {
		prevWaves = nil
	}
	status := make([]edgev1alpha1.WaveStatus, len(waves))
	halted := -1
	for w := range waves {
		ws := &status[w]
		ws.Percent = waves[w].Percent
		if prevWaves != nil {
			ws.StartedAt, ws.CompletedAt = prevWaves[w].StartedAt, prevWaves[w].CompletedAt
			if prevWaves[w].State == edgev1alpha1.WaveFailed {
				halted = w // a halt is final for this rollout
			}
		}
		if halted < 0 && waveFailed(members, w, in.Spec.Rollout.FailureThreshold) {
			halted = w
			out.Events = append(out.Events, Event{Warning: true, Reason: ReasonHalted, Message: fmt.Sprintf(
				"wave %d: %d of %d devices failed, over the %d%% threshold; no further device is updated",
				w+1, countFailures(members, w), waveSize(members, w), in.Spec.Rollout.FailureThreshold)})
		}
	}

	current := len(waves) - 1
	for w := range waves {
		if halted == w || !waveComplete(members, w) {
			current = w
			break
		}
	}
	if halted >= 0 {
		current = halted
		out.Halted = true
		if in.Spec.Rollout.AutoRollback {
			rollBack(&out, in, members, halted)
		}
	} else {
		out.Waiting, out.RequeueAfter = waiting(in, status, current)
		if out.Waiting == "" {
			start(&out, in, members, current)
		}
	}

	for w := range waves {
		ws := &status[w]
		ws.Devices = counts(members, func(m member) bool { return m.wave == w })
		switch {
		case w == halted:
			ws.State = edgev1alpha1.WaveFailed
		case waveComplete(members, w) && w <= current && (halted < 0 || w < halted):
			ws.State = edgev1alpha1.WaveSucceeded
		case w == current && halted < 0 && ws.Devices.Pending < ws.Devices.Targeted:
			ws.State = edgev1alpha1.WaveProgressing
			if in.Spec.Rollout.Paused {
				ws.State = edgev1alpha1.WavePaused
			}
		default:
			ws.State = edgev1alpha1.WavePending
		}
		if ws.State != edgev1alpha1.WavePending && ws.StartedAt == nil {
			ws.StartedAt = &metav1.Time{Time: in.Now}
			out.Events = append(out.Events, Event{Reason: ReasonWaveStarted, Message: fmt.Sprintf("wave %d of %d started: %d devices", w+1, len(waves), ws.Devices.Targeted)})
		}
		if (ws.State == edgev1alpha1.WaveSucceeded || ws.State == edgev1alpha1.WaveFailed) && ws.CompletedAt == nil {
			ws.CompletedAt = &metav1.Time{Time: in.Now}
			if ws.State == edgev1alpha1.WaveSucceeded {
				out.Events = append(out.Events, Event{Reason: ReasonWaveSucceeded, Message: fmt.Sprintf("wave %d of %d succeeded: %d devices updated, %d failed", w+1, len(waves), ws.Devices.Succeeded, ws.Devices.Failed+ws.Devices.RolledBack)})
			}
		}
	}

	if nextTimeout > 0 && (out.RequeueAfter == 0 || nextTimeout < out.RequeueAfter) {
		out.RequeueAfter = nextTimeout
	}
	all := counts(members, func(member) bool { return true })
	out.Complete = halted < 0 && len(members) > 0 && all.Pending == 0 && all.Updating == 0
	out.Done = out.Complete && all.Succeeded == all.Targeted
	if out.Complete && !wasComplete(in.Previous, in.Rollout) {
		out.Events = append(out.Events, Event{Reason: ReasonComplete, Message: fmt.Sprintf("%d of %d devices run %s; %d failed, %d rolled back",
			all.Succeeded, all.Targeted, in.Spec.Version, all.Failed, all.RolledBack)})
	}
	deviceEvents(&out, members, prevDevice)

	out.Status = edgev1alpha1.FirmwareStatus{
		Rollout:        in.Rollout,
		CurrentWave:    int32(current),
		Waves:          status,
		Devices:        &all,
		DeviceStatuses: deviceStatuses(members, prevDevice, in.Now),
	}
	return out
}

// assignWaves puts each device in a wave. Devices are spread in an order
// that is random-looking but fixed for the rollout (a hash of rollout and
// name), so the first wave is not always the same devices, and a device
// keeps the wave it was first given even when the fleet grows.
func assignWaves(in Input) []member {
	devs := slices.Clone(in.Devices)
	key := func(name string) uint64 {
		h := fnv.New64a()
		_, _ = h.Write([]byte(in.Rollout + "/" + name))
		return h.Sum64()
	}
	sort.Slice(devs, func(i, j int) bool {
		ki, kj := key(devs[i].Name), key(devs[j].Name)
		if ki != kj {
			return ki < kj
		}
		return devs[i].Name < devs[j].Name
	})
	prev := map[string]int{}
	if in.Previous.Rollout == in.Rollout {
		for _, d := range in.Previous.DeviceStatuses {
			prev[d.Name] = int(d.Wave)
		}
	}
	waves := in.Spec.Rollout.Waves
	firstOpen := int(in.Previous.CurrentWave)
	members := make([]member, 0, len(devs))
	for i, d := range devs {
		w, ok := prev[d.Name]
		if !ok || w >= len(waves) {
			w = 0
			for w < len(waves)-1 && i >= int(math.Ceil(float64(waves[w].Percent)*float64(len(devs))/100)) {
				w++
			}
			if in.Previous.Rollout == in.Rollout && w < firstOpen && firstOpen < len(waves) {
				w = firstOpen // a late device never reopens a finished wave
			}
		}
		members = append(members, member{Device: d, wave: w})
	}
	return members
}

// observe derives a device's phase from what was asked (its annotation)
// and what it reported for this rollout.
func observe(m *member, in Input, prev edgev1alpha1.DeviceRolloutStatus) {
	fw := m.Firmware
	if fw == nil {
		fw = &edgev1alpha1.DeviceFirmware{}
	}
	m.from = prev.FromVersion
	asked := m.Assignment != nil && m.Assignment.Rollout == in.Rollout
	if !asked {
		m.from = fw.Version
		switch {
		case m.Assignment != nil && fw.Rollout == m.Assignment.Rollout && !terminal(fw.Phase):
			m.phase, m.busy = edgev1alpha1.DevicePending, m.Assignment.Rollout
			m.message = fmt.Sprintf("busy with rollout %s", m.Assignment.Rollout)
		case fw.Version == in.Spec.Version:
			m.phase, m.message = edgev1alpha1.DeviceSucceeded, "already running "+fw.Version
		default:
			m.phase = edgev1alpha1.DevicePending
		}
		return
	}
	action := m.Assignment.Action
	reported := fw.Rollout == in.Rollout && fw.Action == action
	if !reported {
		m.phase = edgev1alpha1.DeviceScheduled
		if action == protocol.OTARollback {
			m.phase = edgev1alpha1.DeviceRollingBack
		}
		return
	}
	m.message = fw.Message
	if action == protocol.OTARollback {
		switch fw.Phase {
		case protocol.PhaseSucceeded, protocol.PhaseRolledBack:
			m.phase = edgev1alpha1.DeviceRolledBack
		case protocol.PhaseFailed:
			m.phase = edgev1alpha1.DeviceFailed
		default:
			m.phase = edgev1alpha1.DeviceRollingBack
		}
		return
	}
	switch fw.Phase {
	case protocol.PhaseDownloading, protocol.PhaseInstalling, protocol.PhaseRebooting, protocol.PhaseVerifying:
		m.phase = edgev1alpha1.DevicePhase(fw.Phase)
	case protocol.PhaseSucceeded:
		m.phase, m.installed = edgev1alpha1.DeviceSucceeded, true
	case protocol.PhaseFailed:
		m.phase, m.failure = edgev1alpha1.DeviceFailed, true
	case protocol.PhaseRolledBack: // the device's health check failed
		m.phase, m.failure = edgev1alpha1.DeviceRolledBack, true
	default:
		m.phase = edgev1alpha1.DeviceScheduled
	}
}

// timedOutPrefix starts the message of a device that stopped progressing.
const timedOutPrefix = "no progress for "

func deviceTimeout(r edgev1alpha1.Rollout) time.Duration {
	if r.DeviceTimeout == nil {
		return 0
	}
	d, err := time.ParseDuration(string(*r.DeviceTimeout))
	if err != nil {
		return 0
	}
	return d
}

// timeOut fails an in-flight device that has stayed in its phase longer
// than timeout, and keeps it failed until it reports again. It returns the
// time left before the device times out (zero when it did or cannot).
func timeOut(m *member, prev edgev1alpha1.DeviceRolloutStatus, timeout time.Duration, now time.Time) time.Duration {
	if prev.LastTransitionTime == nil || !inFlight(m.phase) {
		return 0
	}
	var reported time.Time
	if m.Firmware != nil && m.Firmware.UpdatedAt != nil {
		reported = m.Firmware.UpdatedAt.Time
	}
	since := prev.LastTransitionTime.Time
	if prev.Phase == edgev1alpha1.DeviceFailed && strings.HasPrefix(prev.Message, timedOutPrefix) {
		if reported.After(since) {
			return 0 // it spoke again: what it says now counts
		}
		m.phase, m.failure, m.message = edgev1alpha1.DeviceFailed, true, prev.Message
		return 0
	}
	if reported.After(since) {
		since = reported
	}
	if prev.Phase != m.phase {
		return timeout
	}
	if left := timeout - now.Sub(since); left > 0 {
		return left
	}
	m.message = fmt.Sprintf("%s%s (stuck in %s)", timedOutPrefix, timeout, m.phase)
	m.phase, m.failure = edgev1alpha1.DeviceFailed, true
	return 0
}

func terminal(phase string) bool {
	return phase == "" || phase == protocol.PhaseIdle || phase == protocol.PhaseSucceeded ||
		phase == protocol.PhaseFailed || phase == protocol.PhaseRolledBack
}

func isTerminal(p edgev1alpha1.DevicePhase) bool {
	return p == edgev1alpha1.DeviceSucceeded || p == edgev1alpha1.DeviceFailed || p == edgev1alpha1.DeviceRolledBack
}

func inFlight(p edgev1alpha1.DevicePhase) bool {
	return p != edgev1alpha1.DevicePending && !isTerminal(p)
}

func waveSize(ms []member, w int) int {
	n := 0
	for _, m := range ms {
		if m.wave == w {
			n++
		}
	}
	return n
}

func countFailures(ms []member, w int) int {
	n := 0
	for _, m := range ms {
		if m.wave == w && m.failure {
			n++
		}
	}
	return n
}

// waveFailed: more than threshold percent of the wave failed. Checked as
// soon as failures come in, not only when the wave ends.
func waveFailed(ms []member, w int, threshold int32) bool {
	f := countFailures(ms, w)
	return f > 0 && f*100 > int(threshold)*waveSize(ms, w)
}

func waveComplete(ms []member, w int) bool {
	for _, m := range ms {
		if m.wave == w && !isTerminal(m.phase) {
			return false
		}
	}
	return true
}

// waiting tells why no device may start now, and when that changes.
func waiting(in Input, status []edgev1alpha1.WaveStatus, current int) (string, time.Duration) {
	if in.Spec.Rollout.Paused {
		return ReasonPaused, 0
	}
	if current > 0 && status[current].StartedAt == nil {
		prev := status[current-1]
		if p := in.Spec.Rollout.Waves[current-1].Pause; p != nil && prev.CompletedAt != nil {
			if d, err := time.ParseDuration(string(*p)); err == nil {
				if left := prev.CompletedAt.Add(d).Sub(in.Now); left > 0 {
					return ReasonWavePause, left
				}
			}
		} else if prev.CompletedAt == nil {
			// The previous wave completes in this very plan: record it
			// first so its pause is counted from now.
			if in.Spec.Rollout.Waves[current-1].Pause != nil {
				if d, err := time.ParseDuration(string(*in.Spec.Rollout.Waves[current-1].Pause)); err == nil && d > 0 {
					return ReasonWavePause, d
				}
			}
		}
	}
	if !in.Window.Open(in.Now) {
		return ReasonOutsideWindow, in.Window.Next(in.Now).Sub(in.Now)
	}
	return "", 0
}

// start schedules pending devices of the current wave up to maxUnavailable.
func start(out *Output, in Input, ms []member, current int) {
	size := waveSize(ms, current)
	limit := 1
	if mu := in.Spec.Rollout.MaxUnavailable; mu != nil {
		if n, err := intstr.GetScaledValueFromIntOrPercent(mu, size, true); err == nil && n > 0 {
			limit = n
		}
	} else {
		limit = max(1, int(math.Ceil(float64(size)/10)))
	}
	busy := 0
	for _, m := range ms {
		if m.wave == current && inFlight(m.phase) {
			busy++
		}
	}
	for i := range ms {
		m := &ms[i]
		if busy >= limit {
			return
		}
		if m.wave != current || m.phase != edgev1alpha1.DevicePending || m.busy != "" {
			continue
		}
		out.Assign[m.Name] = protocol.OTAAssignment{
			Rollout: in.Rollout, Action: protocol.OTAInstall, Version: in.Spec.Version,
			Target: in.Spec.Metadata.Target, Repository: in.Repository,
		}
		m.phase, m.message = edgev1alpha1.DeviceScheduled, ""
		busy++
	}
}

// rollBack asks every device this rollout updated in the halted wave to
// boot its previous slot again.
func rollBack(out *Output, in Input, ms []member, halted int) {
	n := 0
	for i := range ms {
		m := &ms[i]
		if m.wave != halted || !m.installed {
			continue
		}
		out.Assign[m.Name] = protocol.OTAAssignment{
			Rollout: in.Rollout, Action: protocol.OTARollback, Version: m.from,
			Target: in.Spec.Metadata.Target, Repository: in.Repository,
		}
		m.phase, m.installed = edgev1alpha1.DeviceRollingBack, false
		n++
	}
	if n > 0 {
		out.Events = append(out.Events, Event{Warning: true, Reason: ReasonRollingBack, Message: fmt.Sprintf("wave %d halted: rolling back %d updated device(s)", halted+1, n)})
	}
}

func counts(ms []member, in func(member) bool) edgev1alpha1.DeviceCounts {
	var c edgev1alpha1.DeviceCounts
	for _, m := range ms {
		if !in(m) {
			continue
		}
		c.Targeted++
		switch m.phase {
		case edgev1alpha1.DevicePending:
			c.Pending++
		case edgev1alpha1.DeviceSucceeded:
			c.Succeeded++
		case edgev1alpha1.DeviceFailed:
			c.Failed++
		case edgev1alpha1.DeviceRolledBack:
			c.RolledBack++
		default:
			c.Updating++
		}
	}
	return c
}

func wasComplete(s edgev1alpha1.FirmwareStatus, rollout string) bool {
	return s.Rollout == rollout && s.Devices != nil && s.Devices.Targeted > 0 && s.Devices.Pending == 0 && s.Devices.Updating == 0
}

func deviceEvents(out *Output, ms []member, prev map[string]edgev1alpha1.DeviceRolloutStatus) {
	for _, m := range ms {
		if prev[m.Name].Phase == m.phase {
			continue
		}
		switch {
		case m.phase == edgev1alpha1.DeviceFailed:
			out.Events = append(out.Events, Event{Warning: true, Reason: ReasonDeviceFailed, Message: fmt.Sprintf("device %s failed: %s", m.Name, m.message)})
		case m.phase == edgev1alpha1.DeviceRolledBack && m.failure:
			out.Events = append(out.Events, Event{Warning: true, Reason: ReasonDeviceRolledBack, Message: fmt.Sprintf("device %s rolled back: %s", m.Name, m.message)})
		}
	}
}

func deviceStatuses(ms []member, prev map[string]edgev1alpha1.DeviceRolloutStatus, now time.Time) []edgev1alpha1.DeviceRolloutStatus {
	out := make([]edgev1alpha1.DeviceRolloutStatus, 0, len(ms))
	for _, m := range ms {
		ds := edgev1alpha1.DeviceRolloutStatus{
			Name: m.Name, Wave: int32(m.wave), Phase: m.phase, FromVersion: m.from,
			Message: truncate(m.message, 256), LastTransitionTime: prev[m.Name].LastTransitionTime,
		}
		if p, ok := prev[m.Name]; !ok || p.Phase != m.phase || ds.LastTransitionTime == nil {
			ds.LastTransitionTime = &metav1.Time{Time: now}
		}
		out = append(out, ds)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-3], "") + "..."
}
