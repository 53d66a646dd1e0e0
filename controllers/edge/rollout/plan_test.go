package rollout

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func spec(waves []int32, maxUnavailable string, threshold int32) edgev1alpha1.FirmwareSpec {
	s := edgev1alpha1.FirmwareSpec{
		Version:  "2.0.0",
		Metadata: edgev1alpha1.RepositoryTarget{Target: "gw/2.0.0/image"},
		Rollout:  edgev1alpha1.Rollout{FailureThreshold: threshold, AutoRollback: true},
	}
	for _, p := range waves {
		s.Rollout.Waves = append(s.Rollout.Waves, edgev1alpha1.Wave{Percent: p})
	}
	mu := intstr.Parse(maxUnavailable)
	s.Rollout.MaxUnavailable = &mu
	return s
}

// fleet simulates devices that carry out their assignments at once.
type fleet struct {
	devices map[string]*Device
	order   []string
	// outcome decides how an install ends on a device.
	outcome func(name string) string
}

func newFleet(n int) *fleet {
	f := &fleet{devices: map[string]*Device{}, outcome: func(string) string { return protocol.PhaseSucceeded }}
	for i := range n {
		name := fmt.Sprintf("dev-%03d", i)
		f.devices[name] = &Device{Name: name, Firmware: &edgev1alpha1.DeviceFirmware{Version: "1.0.0", Slot: "A"}}
		f.order = append(f.order, name)
	}
	return f
}

func (f *fleet) list() []Device {
	out := make([]Device, 0, len(f.order))
	for _, n := range f.order {
		out = append(out, *f.devices[n])
	}
	return out
}

// apply writes the assignments; run lets the devices act on them.
func (f *fleet) apply(out Output) {
	for name, a := range out.Assign {
		f.devices[name].Assignment = &a
	}
}

func (f *fleet) run() {
	for _, n := range f.order {
		d := f.devices[n]
		a := d.Assignment
		if a == nil || (d.Firmware.Rollout == a.Rollout && d.Firmware.Action == a.Action) {
			continue
		}
		fw := &edgev1alpha1.DeviceFirmware{Version: d.Firmware.Version, Slot: d.Firmware.Slot, Rollout: a.Rollout, Action: a.Action}
		switch a.Action {
		case protocol.OTARollback:
			fw.Version, fw.Phase = a.Version, protocol.PhaseRolledBack
		default:
			fw.Phase = f.outcome(n)
			if fw.Phase == protocol.PhaseSucceeded {
				fw.Version = a.Version
			}
			if fw.Phase != protocol.PhaseSucceeded {
				fw.Message = "health check failed"
			}
		}
		d.Firmware = fw
	}
}

type step struct {
	in  Input
	out Output
}

func (s *step) next(f *fleet, now time.Time) Output {
	s.in.Devices = f.list()
	s.in.Previous = s.out.Status
	s.in.Now = now
	s.out = Plan(s.in)
	return s.out
}

func reasons(evs []Event) []string {
	var r []string
	for _, e := range evs {
		r = append(r, e.Reason)
	}
	return r
}

func TestRolloutCompletesWaveByWave(t *testing.T) {
	f := newFleet(50)
	s := &step{in: Input{Spec: spec([]int32{10, 50, 100}, "100%", 10), Rollout: ID("fw", "abcdef0123456789"), Repository: "http://ota/"}}
	sizes := []int{5, 20, 25}
	for w, size := range sizes {
		out := s.next(f, t0)
		if len(out.Assign) != size {
			t.Fatalf("wave %d: %d assignments, want %d", w+1, len(out.Assign), size)
		}
		for name, a := range out.Assign {
			if a.Action != protocol.OTAInstall || a.Version != "2.0.0" || a.Target != "gw/2.0.0/image" || a.Repository != "http://ota/" {
				t.Fatalf("%s: assignment %+v", name, a)
			}
		}
		if got := out.Status.Waves[w].State; got != edgev1alpha1.WaveProgressing {
			t.Fatalf("wave %d state %s, want Progressing", w+1, got)
		}
		if int(out.Status.CurrentWave) != w {
			t.Fatalf("current wave %d, want %d", out.Status.CurrentWave, w)
		}
		f.apply(out)
		// The same inputs again: nothing new is asked.
		if again := s.next(f, t0); len(again.Assign) != 0 || len(again.Events) != 0 {
			t.Fatalf("wave %d replanned: %d assignments, events %v", w+1, len(again.Assign), reasons(again.Events))
		}
		f.run()
	}
	out := s.next(f, t0)
	if !out.Done || out.Halted || out.Status.Devices.Succeeded != 50 {
		t.Fatalf("done=%v halted=%v counts=%+v", out.Done, out.Halted, out.Status.Devices)
	}
	for w, ws := range out.Status.Waves {
		if ws.State != edgev1alpha1.WaveSucceeded || int(ws.Devices.Succeeded) != sizes[w] || ws.CompletedAt == nil {
			t.Fatalf("wave %d: %+v", w+1, ws)
		}
	}
	if got := reasons(out.Events); len(got) != 2 || got[0] != ReasonWaveSucceeded || got[1] != ReasonComplete {
		t.Fatalf("events %v", got)
	}
	for _, d := range out.Status.DeviceStatuses {
		if d.Phase != edgev1alpha1.DeviceSucceeded || d.FromVersion != "1.0.0" {
			t.Fatalf("device %+v", d)
		}
	}
}

func TestRolloutHaltsAndRollsBackTheFailingWave(t *testing.T) {
	f := newFleet(50)
	s := &step{in: Input{Spec: spec([]int32{10, 50, 100}, "100%", 10), Rollout: "fw:1", Repository: "http://ota/"}}
	f.apply(s.next(f, t0))
	f.run()
	out := s.next(f, t0) // wave 1 done, wave 2 scheduled
	wave2 := map[string]bool{}
	for n := range out.Assign {
		wave2[n] = true
	}
	failing := map[string]bool{}
	for n := range wave2 {
		if len(failing) < 4 { // 4 of 20 = 20% > 10%
			failing[n] = true
		}
	}
	f.outcome = func(n string) string {
		if failing[n] {
			return protocol.PhaseRolledBack
		}
		return protocol.PhaseSucceeded
	}
	f.apply(out)
	f.run()
	out = s.next(f, t0)
	if !out.Halted || out.Status.Waves[1].State != edgev1alpha1.WaveFailed || out.Status.CurrentWave != 1 {
		t.Fatalf("halted=%v waves=%+v", out.Halted, out.Status.Waves)
	}
	if len(out.Assign) != 16 {
		t.Fatalf("%d rollbacks, want the 16 updated devices of wave 2", len(out.Assign))
	}
	for n, a := range out.Assign {
		if !wave2[n] || failing[n] || a.Action != protocol.OTARollback || a.Version != "1.0.0" {
			t.Fatalf("%s: %+v (wave 2: %v, failing: %v)", n, a, wave2[n], failing[n])
		}
	}
	if got := reasons(out.Events); !contains(got, ReasonHalted) || !contains(got, ReasonRollingBack) || !contains(got, ReasonDeviceRolledBack) {
		t.Fatalf("events %v", got)
	}
	f.apply(out)
	f.run()
	out = s.next(f, t0)
	if len(out.Assign) != 0 || !out.Halted {
		t.Fatalf("after rollback: %d assignments, halted %v", len(out.Assign), out.Halted)
	}
	w := out.Status.Waves
	if w[1].Devices.RolledBack != 20 || w[2].State != edgev1alpha1.WavePending || w[2].Devices.Pending != 25 || w[0].Devices.Succeeded != 5 {
		t.Fatalf("waves %+v", w)
	}
	for _, n := range f.order {
		d := f.devices[n]
		if wave2[n] && d.Firmware.Version != "1.0.0" {
			t.Fatalf("%s runs %s after the rollback", n, d.Firmware.Version)
		}
		if !wave2[n] && d.Assignment != nil && d.Firmware.Version == "1.0.0" {
			t.Fatalf("%s of another wave was touched", n)
		}
	}
}

func TestRolloutRespectsMaxUnavailable(t *testing.T) {
	f := newFleet(40)
	s := &step{in: Input{Spec: spec([]int32{100}, "25%", 50), Rollout: "fw:1"}}
	out := s.next(f, t0)
	if len(out.Assign) != 10 {
		t.Fatalf("%d started, want 10 (25%% of 40)", len(out.Assign))
	}
	f.apply(out)
	if again := s.next(f, t0); len(again.Assign) != 0 {
		t.Fatalf("%d more started while 10 are updating", len(again.Assign))
	}
	f.run()
	if out := s.next(f, t0); len(out.Assign) != 10 {
		t.Fatalf("%d started after the first 10 finished, want 10", len(out.Assign))
	}
}

func TestRolloutWaits(t *testing.T) {
	pause := common.Duration("1h")
	win := &edgev1alpha1.MaintenanceWindow{Start: "01:00", Duration: "4h", TimeZone: "Europe/Paris"}
	window, err := ParseWindow(win)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Input)
		now    time.Time
		reason string
		after  time.Duration
	}{
		{name: "paused", mutate: func(in *Input) { in.Spec.Rollout.Paused = true }, now: t0, reason: ReasonPaused},
		// 12:00 UTC is 13:00 in Paris; the window opens at 01:00 Paris = 00:00 UTC.
		{name: "outside the window", mutate: func(in *Input) { in.Window = window }, now: t0, reason: ReasonOutsideWindow, after: 12 * time.Hour},
		{name: "inside the window", mutate: func(in *Input) { in.Window = window }, now: time.Date(2026, 11, 25, 1, 30, 0, 0, time.UTC)},
		{name: "between waves", mutate: func(in *Input) { in.Spec.Rollout.Waves[0].Pause = &pause }, now: t0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(10)
			s := &step{in: Input{Spec: spec([]int32{50, 100}, "100%", 0), Rollout: "fw:1"}}
			tc.mutate(&s.in)
			out := s.next(f, tc.now)
			if out.Waiting != tc.reason || out.RequeueAfter != tc.after {
				t.Fatalf("waiting %q after %v, want %q after %v", out.Waiting, out.RequeueAfter, tc.reason, tc.after)
			}
			if (len(out.Assign) == 0) != (tc.reason != "") {
				t.Fatalf("%d assignments while waiting %q", len(out.Assign), tc.reason)
			}
			if tc.name != "between waves" {
				return
			}
			f.apply(out)
			f.run()
			out = s.next(f, tc.now) // wave 1 completes now
			if out.Waiting != ReasonWavePause || out.RequeueAfter != time.Hour || len(out.Assign) != 0 {
				t.Fatalf("after wave 1: waiting %q for %v, %d assignments", out.Waiting, out.RequeueAfter, len(out.Assign))
			}
			if out = s.next(f, tc.now.Add(30*time.Minute)); out.RequeueAfter != 30*time.Minute || len(out.Assign) != 0 {
				t.Fatalf("half way: %v, %d assignments", out.RequeueAfter, len(out.Assign))
			}
			if out = s.next(f, tc.now.Add(time.Hour)); len(out.Assign) != 5 || out.Waiting != "" {
				t.Fatalf("after the pause: %d assignments, waiting %q", len(out.Assign), out.Waiting)
			}
		})
	}
}

func TestRolloutSkipsBusyAndUpToDateDevices(t *testing.T) {
	f := newFleet(3)
	f.devices["dev-000"].Firmware.Version = "2.0.0"
	other := protocol.OTAAssignment{Rollout: "other:1", Action: protocol.OTAInstall}
	f.devices["dev-001"].Assignment = &other
	f.devices["dev-001"].Firmware.Rollout, f.devices["dev-001"].Firmware.Phase = "other:1", protocol.PhaseDownloading
	s := &step{in: Input{Spec: spec([]int32{100}, "100%", 0), Rollout: "fw:1"}}
	out := s.next(f, t0)
	if len(out.Assign) != 1 || out.Assign["dev-002"].Rollout != "fw:1" {
		t.Fatalf("assignments %v", out.Assign)
	}
	phases := map[string]edgev1alpha1.DevicePhase{}
	for _, d := range out.Status.DeviceStatuses {
		phases[d.Name] = d.Phase
	}
	if phases["dev-000"] != edgev1alpha1.DeviceSucceeded || phases["dev-001"] != edgev1alpha1.DevicePending || phases["dev-002"] != edgev1alpha1.DeviceScheduled {
		t.Fatalf("phases %v", phases)
	}
}

func TestWavesKeepTheirDevicesWhenTheFleetGrows(t *testing.T) {
	f := newFleet(20)
	s := &step{in: Input{Spec: spec([]int32{50, 100}, "100%", 0), Rollout: "fw:1"}}
	first := s.next(f, t0)
	f.apply(first)
	f.run()
	s.next(f, t0) // wave 2 starts
	for i := range 20 {
		name := fmt.Sprintf("new-%02d", i)
		f.devices[name] = &Device{Name: name, Firmware: &edgev1alpha1.DeviceFirmware{Version: "1.0.0"}}
		f.order = append(f.order, name)
	}
	out := s.next(f, t0)
	for _, d := range out.Status.DeviceStatuses {
		_, wasFirst := first.Assign[d.Name]
		if wasFirst != (d.Wave == 0) {
			t.Fatalf("%s moved to wave %d", d.Name, d.Wave+1)
		}
	}
}

func TestWindow(t *testing.T) {
	w, err := ParseWindow(&edgev1alpha1.MaintenanceWindow{Start: "22:00", Duration: "4h", Days: []edgev1alpha1.Weekday{"Tue"}})
	if err != nil {
		t.Fatal(err)
	}
	// 2026-11-24 is a Tuesday; the window runs Tue 22:00 to Wed 02:00.
	for _, tc := range []struct {
		at   string
		open bool
		next string
	}{
		{"2026-11-24T21:59:00Z", false, "2026-11-24T22:00:00Z"},
		{"2026-11-24T23:00:00Z", true, "2026-12-01T22:00:00Z"},
		{"2026-11-25T01:59:00Z", true, "2026-12-01T22:00:00Z"},
		{"2026-11-25T02:00:00Z", false, "2026-12-01T22:00:00Z"},
	} {
		at, _ := time.Parse(time.RFC3339, tc.at)
		if got := w.Open(at); got != tc.open {
			t.Errorf("Open(%s) = %v", tc.at, got)
		}
		if got := w.Next(at).UTC().Format(time.RFC3339); got != tc.next {
			t.Errorf("Next(%s) = %s, want %s", tc.at, got, tc.next)
		}
	}
	if _, err := ParseWindow(&edgev1alpha1.MaintenanceWindow{Start: "01:00", Duration: "1h", TimeZone: "Mars/Olympus"}); err == nil {
		t.Error("an unknown time zone was accepted")
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestRolloutCompletesWithFailuresWithinThreshold(t *testing.T) {
	f := newFleet(20)
	f.outcome = func(n string) string {
		if n == "dev-007" {
			return protocol.PhaseFailed
		}
		return protocol.PhaseSucceeded
	}
	s := &step{in: Input{Spec: spec([]int32{100}, "100%", 10), Rollout: "fw:1"}}
	f.apply(s.next(f, t0))
	f.run()
	out := s.next(f, t0)
	if !out.Complete || out.Done || out.Halted || len(out.Assign) != 0 {
		t.Fatalf("complete=%v done=%v halted=%v assignments=%d", out.Complete, out.Done, out.Halted, len(out.Assign))
	}
	if c := out.Status.Devices; c.Succeeded != 19 || c.Failed != 1 {
		t.Fatalf("counts %+v", c)
	}
	if got := reasons(out.Events); !contains(got, ReasonDeviceFailed) || !contains(got, ReasonComplete) {
		t.Fatalf("events %v", got)
	}
	if again := s.next(f, t0); len(again.Events) != 0 {
		t.Fatalf("events repeated: %v", reasons(again.Events))
	}
}

func TestSilentDeviceTimesOut(t *testing.T) {
	f := newFleet(4)
	timeout := common.Duration("10m")
	s := &step{in: Input{Spec: spec([]int32{100}, "100%", 50), Rollout: "fw:1"}}
	s.in.Spec.Rollout.DeviceTimeout = &timeout
	f.apply(s.next(f, t0))
	silent := f.devices["dev-002"]
	assignment := silent.Assignment
	silent.Assignment = nil // keeps it out of run: it never reports
	f.run()
	silent.Assignment = assignment

	out := s.next(f, t0.Add(5*time.Minute))
	if out.Complete || out.RequeueAfter != 5*time.Minute {
		t.Fatalf("after 5m: complete=%v, requeue after %v; want to wait 5m more", out.Complete, out.RequeueAfter)
	}
	out = s.next(f, t0.Add(11*time.Minute))
	phase := map[string]edgev1alpha1.DeviceRolloutStatus{}
	for _, d := range out.Status.DeviceStatuses {
		phase[d.Name] = d
	}
	if d := phase["dev-002"]; d.Phase != edgev1alpha1.DeviceFailed || d.Message != "no progress for 10m0s (stuck in Scheduled)" {
		t.Fatalf("silent device: %+v", d)
	}
	if !out.Complete || out.Halted || out.Status.Devices.Failed != 1 || !contains(reasons(out.Events), ReasonDeviceFailed) {
		t.Fatalf("complete=%v halted=%v counts=%+v events=%v", out.Complete, out.Halted, out.Status.Devices, reasons(out.Events))
	}
	// Still silent: it stays failed.
	if out = s.next(f, t0.Add(20*time.Minute)); out.Status.Devices.Failed != 1 {
		t.Fatalf("counts %+v", out.Status.Devices)
	}
	// It comes back and installs: its report counts again.
	silent.Firmware = &edgev1alpha1.DeviceFirmware{Version: "2.0.0", Rollout: "fw:1", Action: protocol.OTAInstall, Phase: protocol.PhaseSucceeded,
		UpdatedAt: &metav1.Time{Time: t0.Add(25 * time.Minute)}}
	if out = s.next(f, t0.Add(26*time.Minute)); !out.Done || out.Status.Devices.Succeeded != 4 {
		t.Fatalf("after the late report: done=%v counts=%+v", out.Done, out.Status.Devices)
	}
}
