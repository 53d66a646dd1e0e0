package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/controllers/edge/rollout"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
)

// TestFirmwareRolloutHaltsOnFailures rolls firmware 2.0.0 out to 50
// simulated devices (one edge-agent process, --simulate 50) in waves of
// 10%, 50% and 100%. Four of the 20 devices of wave 2 fail their health
// check after booting the new slot (20%, over the 10% threshold): the
// rollout halts, those devices roll back by themselves, the controller
// rolls back the wave's other 16, and wave 3 is never touched.
func TestFirmwareRolloutHaltsOnFailures(t *testing.T) {
	o := startEdgeOTA(t)
	ctx := context.Background()
	const n = 50
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("sim-%d", i)
	}
	tokens := filepath.Join(o.dir, "tokens")
	o.devices(t, tokens, names...)

	v1 := firmwareImage(1, 256<<10)
	v2 := changeImage(v1, 1, 2)
	factory := filepath.Join(o.dir, "factory.img")
	if err := os.WriteFile(factory, v1, 0o600); err != nil {
		t.Fatal(err)
	}
	failList := filepath.Join(o.dir, "failing")
	if err := os.WriteFile(failList, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	check := fmt.Sprintf(`if grep -qxF "$CAIRN_DEVICE" %s; then echo "app service did not come up"; exit 1; fi`, failList)
	o.startAgent(t, "sim", tokens, filepath.Join(o.dir, "agents"), "--simulate", fmt.Sprint(n),
		"--factory-image", factory, "--ota-health-check", check, "--ota-health-timeout", "20s")
	for _, name := range names {
		eventually(t, 60*time.Second, func(ctx context.Context) error {
			fw, d, err := o.firmwareOf(ctx, name)
			if err != nil {
				return err
			}
			if err := conditionIs(d, "Online", metav1.ConditionTrue); err != nil {
				return err
			}
			if fw.Version != "1.0.0" || fw.Slot != "A" || fw.SHA256 == "" {
				return fmt.Errorf("%s firmware %+v", name, fw)
			}
			return nil
		})
	}

	// The previous release stays published: the base of the deltas. It
	// targets no device.
	o.publish(t, "sim-1.0.0", "1.0.0", v1, []string{"retired-model"}, edgev1alpha1.Rollout{Waves: waves(100), AutoRollback: true})
	fw := o.publish(t, "sim-2.0.0", "2.0.0", v2, []string{otaModel}, edgev1alpha1.Rollout{
		Waves: waves(10, 50, 100), MaxUnavailable: allAtOnce(), FailureThreshold: 10, AutoRollback: true, Paused: true,
	})
	key := client.ObjectKeyFromObject(fw)

	// Paused: every device is placed in a wave, none is assigned.
	var membership map[string]int32
	eventually(t, 30*time.Second, func(ctx context.Context) error {
		if err := env.Client.Get(ctx, key, fw); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(fw.Status.Conditions, "Progressing"); c == nil || c.Reason != rollout.ReasonPaused {
			return fmt.Errorf("Progressing = %+v (Accepted = %+v)", c, meta.FindStatusCondition(fw.Status.Conditions, "Accepted"))
		}
		if len(fw.Status.DeviceStatuses) != n {
			return fmt.Errorf("%d device statuses", len(fw.Status.DeviceStatuses))
		}
		membership = map[string]int32{}
		for _, d := range fw.Status.DeviceStatuses {
			membership[d.Name] = d.Wave
		}
		return nil
	})
	perWave := map[int32][]string{}
	for name, w := range membership {
		perWave[w] = append(perWave[w], name)
	}
	if len(perWave[0]) != 5 || len(perWave[1]) != 20 || len(perWave[2]) != 25 {
		t.Fatalf("wave sizes %d/%d/%d, want 5/20/25", len(perWave[0]), len(perWave[1]), len(perWave[2]))
	}
	for _, name := range names {
		if d, _ := getDevice(ctx, o.ns, name); d.Annotations[edgev1alpha1.AnnotationOTAAssignment] != "" {
			t.Fatalf("%s was assigned while the rollout is paused", name)
		}
	}
	slices.Sort(perWave[1])
	failing := perWave[1][:4]
	var lines string
	for _, name := range failing {
		lines += o.ns + "/" + name + "\n"
	}
	if err := os.WriteFile(failList, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}

	patch := client.MergeFrom(fw.DeepCopy())
	fw.Spec.Rollout.Paused = false
	if err := env.Client.Patch(ctx, fw, patch); err != nil {
		t.Fatal(err)
	}

	eventually(t, 3*time.Minute, func(ctx context.Context) error {
		if err := env.Client.Get(ctx, key, fw); err != nil {
			return err
		}
		w := fw.Status.Waves
		if len(w) != 3 || w[1].State != edgev1alpha1.WaveFailed || w[1].Devices.RolledBack != 20 {
			return fmt.Errorf("waves %+v", w)
		}
		return nil
	})
	w := fw.Status.Waves
	if w[0].State != edgev1alpha1.WaveSucceeded || w[0].Devices.Succeeded != 5 {
		t.Errorf("wave 1: %+v", w[0])
	}
	if w[2].State != edgev1alpha1.WavePending || w[2].Devices.Pending != 25 || w[2].StartedAt != nil {
		t.Errorf("wave 3: %+v", w[2])
	}
	if c := meta.FindStatusCondition(fw.Status.Conditions, common.ConditionDegraded); c == nil || c.Status != metav1.ConditionTrue || c.Reason != rollout.ReasonHalted {
		t.Errorf("Degraded = %+v", c)
	}
	if c := meta.FindStatusCondition(fw.Status.Conditions, common.ConditionReady); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Ready = %+v", c)
	}

	isFailing := func(name string) bool { return slices.Contains(failing, name) }
	for _, name := range names {
		f, d, err := o.firmwareOf(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		assigned := d.Annotations[edgev1alpha1.AnnotationOTAAssignment] != ""
		switch membership[name] {
		case 0:
			if f.Version != "2.0.0" || f.Slot != "B" || f.Phase != protocol.PhaseSucceeded || !f.Delta {
				t.Errorf("wave 1 device %s: %+v", name, f)
			}
		case 1:
			if f.Version != "1.0.0" || f.Slot != "A" || f.Phase != protocol.PhaseRolledBack {
				t.Errorf("wave 2 device %s: %+v", name, f)
			}
			if isFailing(name) && (f.Action != protocol.OTAInstall || !strings.Contains(f.Message, "app service did not come up")) {
				t.Errorf("failing device %s: %+v", name, f)
			}
			if !isFailing(name) && f.Action != protocol.OTARollback {
				t.Errorf("wave 2 device %s was not rolled back by the controller: %+v", name, f)
			}
		case 2:
			if assigned || f.Version != "1.0.0" || f.Slot != "A" || f.Rollout != "" {
				t.Errorf("wave 3 device %s was touched: assigned %v, %+v", name, assigned, f)
			}
		}
	}
	for _, d := range fw.Status.DeviceStatuses {
		if isFailing(d.Name) && (d.Phase != edgev1alpha1.DeviceRolledBack || !strings.Contains(d.Message, "did not come up")) {
			t.Errorf("device status %+v", d)
		}
	}
	requireEvents(t, fw, rollout.ReasonWaveStarted, rollout.ReasonWaveSucceeded, rollout.ReasonHalted, rollout.ReasonRollingBack, rollout.ReasonDeviceRolledBack)
}

// requireEvents waits for events of the reasons on obj.
func requireEvents(t *testing.T, obj client.Object, reasons ...string) {
	t.Helper()
	eventually(t, 20*time.Second, func(ctx context.Context) error {
		var list eventsv1.EventList
		if err := env.Client.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, e := range list.Items {
			if e.Regarding.Name == obj.GetName() {
				seen[e.Reason] = true
			}
		}
		for _, r := range reasons {
			if !seen[r] {
				return fmt.Errorf("no %s event (seen %v)", r, seen)
			}
		}
		return nil
	})
}

// TestFirmwareUpdateSurvivesFaults updates three devices, each meeting a
// fault: its download is cut half way (it resumes with a Range request),
// its delta arrives corrupted (it falls back to the full image), or its
// power fails while the new slot is on trial (it boots the old slot and
// says so).
func TestFirmwareUpdateSurvivesFaults(t *testing.T) {
	o := startEdgeOTA(t)
	tokens := filepath.Join(o.dir, "tokens")
	o.devices(t, tokens, "cut", "corrupt", "power")
	v1 := firmwareImage(3, 512<<10)
	v2 := changeImage(v1, 1, 4)
	factory := filepath.Join(o.dir, "factory.img")
	if err := os.WriteFile(factory, v1, 0o600); err != nil {
		t.Fatal(err)
	}
	o.hook.cutNext(o.ns+"/cut", 200<<10)
	o.hook.corruptDeltas(o.ns + "/corrupt")
	gate := filepath.Join(o.dir, "power-gate")

	// "cut" has no factory image: no delta base, so it downloads the full
	// image. "power" hangs in its health check until it is killed.
	o.startAgent(t, "cut", tokens, filepath.Join(o.dir, "cut"))
	o.startAgent(t, "corrupt", tokens, filepath.Join(o.dir, "corrupt"), "--factory-image", factory)
	power := o.startAgent(t, "power", tokens, filepath.Join(o.dir, "power"), "--factory-image", factory,
		"--ota-health-check", "touch "+gate+"; sleep 300")

	o.publish(t, "sim-1.0.0", "1.0.0", v1, []string{"retired-model"}, edgev1alpha1.Rollout{Waves: waves(100), AutoRollback: true})
	fw := o.publish(t, "sim-2.0.0", "2.0.0", v2, []string{otaModel}, edgev1alpha1.Rollout{
		Waves: waves(100), MaxUnavailable: allAtOnce(), FailureThreshold: 100, AutoRollback: true,
	})

	waitPhase := func(name, phase string, check func(*edgev1alpha1.DeviceFirmware) error) {
		t.Helper()
		eventually(t, 90*time.Second, func(ctx context.Context) error {
			f, _, err := o.firmwareOf(ctx, name)
			if err != nil {
				return err
			}
			if f.Phase != phase {
				return fmt.Errorf("%s phase %s (%s), want %s", name, f.Phase, f.Message, phase)
			}
			return check(f)
		})
	}
	waitPhase("cut", protocol.PhaseSucceeded, func(f *edgev1alpha1.DeviceFirmware) error {
		if f.Version != "2.0.0" || f.Slot != "B" || f.Delta {
			return fmt.Errorf("cut: %+v", f)
		}
		return nil
	})
	targets := o.hook.seen(o.ns+"/cut", "target")
	if len(targets) < 2 || targets[0].rangeHeader != "" || targets[1].rangeHeader != fmt.Sprintf("bytes=%d-", 200<<10) || targets[1].status != 206 {
		t.Errorf("cut: image requests %+v; want a whole request, then one resuming at byte %d", targets, 200<<10)
	}

	waitPhase("corrupt", protocol.PhaseSucceeded, func(f *edgev1alpha1.DeviceFirmware) error {
		if f.Version != "2.0.0" || f.Slot != "B" || f.Delta || !strings.Contains(f.Message, "delta unusable") {
			return fmt.Errorf("corrupt: %+v", f)
		}
		return nil
	})
	if d, t2 := o.hook.seen(o.ns+"/corrupt", "delta"), o.hook.seen(o.ns+"/corrupt", "target"); len(d) == 0 || d[0].status != 200 || len(t2) == 0 {
		t.Errorf("corrupt: delta requests %+v, image requests %+v; want a delta, then the full image", d, t2)
	}

	// Power loss: the new slot is on trial (Verifying, health check
	// running) when the device dies.
	waitPhase("power", protocol.PhaseVerifying, func(f *edgev1alpha1.DeviceFirmware) error {
		if f.Slot != "B" {
			return fmt.Errorf("power: %+v", f)
		}
		return nil
	})
	eventually(t, 10*time.Second, func(context.Context) error { _, err := os.Stat(gate); return err })
	power.kill()
	o.startAgent(t, "power", tokens, filepath.Join(o.dir, "power"), "--factory-image", factory)
	waitPhase("power", protocol.PhaseRolledBack, func(f *edgev1alpha1.DeviceFirmware) error {
		if f.Version != "1.0.0" || f.Slot != "A" || !strings.Contains(f.Message, "did not commit") {
			return fmt.Errorf("power: %+v", f)
		}
		return nil
	})

	// The rollout ends with two devices updated and one rolled back,
	// within its threshold.
	eventually(t, 30*time.Second, func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(fw), fw); err != nil {
			return err
		}
		c := fw.Status.Devices
		if c == nil || c.Succeeded != 2 || c.RolledBack != 1 {
			return fmt.Errorf("devices %+v", c)
		}
		if p := meta.FindStatusCondition(fw.Status.Conditions, "Progressing"); p == nil || p.Reason != rollout.ReasonComplete {
			return fmt.Errorf("Progressing = %+v", p)
		}
		return nil
	})
	if r := meta.FindStatusCondition(fw.Status.Conditions, common.ConditionReady); r == nil || r.Status != metav1.ConditionFalse || r.Reason != "DevicesFailed" {
		t.Errorf("Ready = %+v", r)
	}
}

// TestFirmwareDeviceRefusesForeignMetadata: someone who can write the
// repository ConfigMap replaces it with a repository of their own keys.
// The controller, which trusts that ConfigMap's first root, accepts the
// release; the device, which trusts only the root it was provisioned
// with, refuses the metadata, never downloads the image, keeps its slot,
// and the rollout halts on the failure.
func TestFirmwareDeviceRefusesForeignMetadata(t *testing.T) {
	o := startEdgeOTA(t)
	tokens := filepath.Join(o.dir, "tokens")
	o.devices(t, tokens, "victim")
	v1 := firmwareImage(5, 128<<10)
	factory := filepath.Join(o.dir, "factory.img")
	if err := os.WriteFile(factory, v1, 0o600); err != nil {
		t.Fatal(err)
	}
	o.startAgent(t, "victim", tokens, filepath.Join(o.dir, "victim"), "--factory-image", factory)
	o.publish(t, "sim-1.0.0", "1.0.0", v1, []string{"retired-model"}, edgev1alpha1.Rollout{Waves: waves(100), AutoRollback: true})

	// The attacker's repository: fresh keys for every role, listing an
	// image of their own under the legitimate target name.
	evil := changeImage(v1, 50, 6)
	rogue := &otaEnv{edgeEnv: o.edgeEnv, dir: t.TempDir(), origin: o.origin, release: o.release}
	rogue.initRepository(t)
	fw := rogue.publish(t, "sim-6.6.6", "6.6.6", evil, []string{otaModel}, edgev1alpha1.Rollout{
		Waves: waves(100), MaxUnavailable: allAtOnce(), FailureThreshold: 0, AutoRollback: true,
	})
	o.images.Store(fw.Spec.Artifact.SHA256, evil) // served by the origin like any image

	eventually(t, 60*time.Second, func(ctx context.Context) error {
		f, _, err := o.firmwareOf(ctx, "victim")
		if err != nil {
			return err
		}
		if f.Phase != protocol.PhaseFailed || f.Rollout == "" {
			return fmt.Errorf("victim: %+v", f)
		}
		if !strings.Contains(f.Message, "timestamp.json") || !strings.Contains(f.Message, "signatures verify") {
			return fmt.Errorf("victim failed for another reason: %s", f.Message)
		}
		if f.Version != "1.0.0" || f.Slot != "A" {
			return fmt.Errorf("victim runs %s in slot %s", f.Version, f.Slot)
		}
		return nil
	})
	if got := o.hook.seen(o.ns+"/victim", "target"); len(got) != 0 {
		t.Errorf("the device downloaded the image: %+v", got)
	}
	if got := o.hook.seen(o.ns+"/victim", "delta"); len(got) != 0 {
		t.Errorf("the device downloaded a delta: %+v", got)
	}
	eventually(t, 30*time.Second, func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(fw), fw); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(fw.Status.Conditions, common.ConditionDegraded); c == nil || c.Reason != rollout.ReasonHalted {
			return fmt.Errorf("Degraded = %+v", c)
		}
		return nil
	})
}

// TestFirmwareDeletionWithdrawsAssignments: deleting a Firmware mid-rollout
// withdraws its assignments. A device still downloading abandons the
// update and keeps its slot; a device already updated keeps the new
// version; the Firmware goes once every annotation is removed.
func TestFirmwareDeletionWithdrawsAssignments(t *testing.T) {
	o := startEdgeOTA(t)
	tokens := filepath.Join(o.dir, "tokens")
	o.devices(t, tokens, "held", "done")
	v1 := firmwareImage(8, 128<<10)
	factory := filepath.Join(o.dir, "factory.img")
	if err := os.WriteFile(factory, v1, 0o600); err != nil {
		t.Fatal(err)
	}
	o.hook.stallDownloads(o.ns + "/held")
	for _, name := range []string{"held", "done"} {
		o.startAgent(t, name, tokens, filepath.Join(o.dir, name), "--factory-image", factory)
	}
	o.publish(t, "sim-1.0.0", "1.0.0", v1, []string{"retired-model"}, edgev1alpha1.Rollout{Waves: waves(100), AutoRollback: true})
	fw := o.publish(t, "sim-2.0.0", "2.0.0", changeImage(v1, 1, 9), []string{otaModel}, edgev1alpha1.Rollout{
		Waves: waves(100), MaxUnavailable: allAtOnce(), FailureThreshold: 100, AutoRollback: true,
	})
	phase := func(name, want string) func(context.Context) error {
		return func(ctx context.Context) error {
			f, _, err := o.firmwareOf(ctx, name)
			if err != nil {
				return err
			}
			if f.Phase != want {
				return fmt.Errorf("%s phase %s (%s), want %s", name, f.Phase, f.Message, want)
			}
			return nil
		}
	}
	eventually(t, 60*time.Second, phase("done", protocol.PhaseSucceeded))
	eventually(t, 30*time.Second, phase("held", protocol.PhaseDownloading))

	if err := env.Client.Delete(context.Background(), fw); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func(ctx context.Context) error {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(fw), &edgev1alpha1.Firmware{})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err == nil:
			return errors.New("the Firmware is still there")
		}
		return err
	})
	eventually(t, 30*time.Second, func(ctx context.Context) error {
		f, d, err := o.firmwareOf(ctx, "held")
		if err != nil {
			return err
		}
		if a := d.Annotations[edgev1alpha1.AnnotationOTAAssignment]; a != "" {
			return fmt.Errorf("held still carries %s", a)
		}
		if f.Phase != protocol.PhaseFailed || !strings.HasPrefix(f.Message, "canceled: ") || f.Version != "1.0.0" || f.Slot != "A" {
			return fmt.Errorf("held: %+v", f)
		}
		return nil
	})
	f, d, err := o.firmwareOf(context.Background(), "done")
	if err != nil {
		t.Fatal(err)
	}
	if d.Annotations[edgev1alpha1.AnnotationOTAAssignment] != "" || f.Version != "2.0.0" || f.Slot != "B" || f.Phase != protocol.PhaseSucceeded {
		t.Errorf("done: annotations %v, firmware %+v", d.Annotations, f)
	}
}
