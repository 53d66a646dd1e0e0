package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	common "github.com/cairn-platform/cairn/api/common/v1alpha1"
	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/controllers"
)

// BenchmarkFirmwareRollout rolls firmware out to a fleet of simulated
// devices (one edge-agent process, --simulate; CAIRN_OTA_FLEET devices,
// default 1000) in waves of 10%, 50% and 100% with maxUnavailable 100%:
// each iteration publishes the next version (a 1% change of a 256 KiB
// image, so devices fetch binary deltas) and measures the time from
// creating the Firmware to Ready (every device committed the new slot).
// Run with -benchtime=3x for three rollouts on one fleet.
func BenchmarkFirmwareRollout(b *testing.B) {
	n := 1000
	if v := os.Getenv("CAIRN_OTA_FLEET"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("CAIRN_OTA_FLEET %q", v)
		}
	}
	o := startEdgeOTA(b)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("fleet-%d", i)
	}
	tokens := filepath.Join(o.dir, "tokens")
	o.devices(b, tokens, names...)
	img := firmwareImage(7, 256<<10)
	factory := filepath.Join(o.dir, "factory.img")
	if err := os.WriteFile(factory, img, 0o600); err != nil {
		b.Fatal(err)
	}
	o.startAgent(b, "fleet", tokens, filepath.Join(o.dir, "agents"), "--simulate", strconv.Itoa(n), "--factory-image", factory, "--heartbeat", "30s")
	online := func(version string) func(context.Context) error {
		return func(ctx context.Context) error {
			var list edgev1alpha1.EdgeDeviceList
			if err := env.Client.List(ctx, &list, client.InNamespace(o.ns)); err != nil {
				return err
			}
			ready := 0
			for _, d := range list.Items {
				if f := d.Status.Firmware; f != nil && f.Version == version && conditionIs(&d, "Online", "True") == nil {
					ready++
				}
			}
			if ready < n {
				return fmt.Errorf("%d of %d devices online on %s", ready, n, version)
			}
			return nil
		}
	}
	eventually(b, 5*time.Minute, online("1.0.0"))
	o.publish(b, "fleet-1.0.0", "1.0.0", img, []string{"retired-model"}, edgev1alpha1.Rollout{Waves: waves(100), AutoRollback: true})

	// A watch, not polling: a rollout's status lists every device, and
	// fetching it ten times a second would load the API server.
	watcher, err := client.NewWithWatch(env.Config, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		b.Fatal(err)
	}
	var durations []time.Duration
	waveDurations := make([][]time.Duration, 3)
	version := 1
	for b.Loop() {
		version++
		next := changeImage(img, 1, uint64(version))
		v := fmt.Sprintf("%d.0.0", version)
		start := time.Now()
		fw := o.publish(b, "fleet-"+v, v, next, []string{otaModel}, edgev1alpha1.Rollout{
			Waves: waves(10, 50, 100), MaxUnavailable: allAtOnce(), FailureThreshold: 5, AutoRollback: true,
		})
		fw = waitFirmwareReady(b, watcher, fw)
		d := time.Since(start)
		durations = append(durations, d)
		var waveTimes []string
		for i, w := range fw.Status.Waves {
			if w.StartedAt == nil || w.CompletedAt == nil {
				continue
			}
			wd := w.CompletedAt.Sub(w.StartedAt.Time)
			waveDurations[i] = append(waveDurations[i], wd)
			waveTimes = append(waveTimes, wd.Round(10*time.Millisecond).String())
		}
		b.Logf("rollout of %s to %d devices: %s (waves %v; status timestamps have 1 s resolution)", v, n, d.Round(10*time.Millisecond), waveTimes)
		for i, w := range fw.Status.Waves {
			var done []time.Duration
			for _, ds := range fw.Status.DeviceStatuses {
				if int(ds.Wave) == i && ds.LastTransitionTime != nil && w.StartedAt != nil {
					done = append(done, ds.LastTransitionTime.Sub(w.StartedAt.Time))
				}
			}
			slices.Sort(done)
			if len(done) > 0 {
				b.Logf("wave %d: %d devices done after p50 %s, p90 %s, max %s", i+1, len(done), done[len(done)/2], done[len(done)*9/10], done[len(done)-1])
			}
		}
		img = next
	}
	slices.Sort(durations)
	b.ReportMetric(durations[len(durations)/2].Seconds(), "rollout-s-median")
	b.ReportMetric(durations[0].Seconds(), "rollout-s-min")
	b.ReportMetric(durations[len(durations)-1].Seconds(), "rollout-s-max")
	for i, wd := range waveDurations {
		if len(wd) > 0 {
			slices.Sort(wd)
			b.ReportMetric(wd[len(wd)/2].Seconds(), fmt.Sprintf("wave%d-s-median", i+1))
		}
	}
	b.ReportMetric(float64(n), "devices")
	b.ReportMetric(0, "ns/op")
}

// waitFirmwareReady watches fw until it is Ready and returns it.
func waitFirmwareReady(b *testing.B, c client.WithWatch, fw *edgev1alpha1.Firmware) *edgev1alpha1.Firmware {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	w, err := c.Watch(ctx, &edgev1alpha1.FirmwareList{}, client.InNamespace(fw.Namespace), client.MatchingFields{"metadata.name": fw.Name})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		got, ok := ev.Object.(*edgev1alpha1.Firmware)
		if !ok {
			continue
		}
		if c := got.Status.Devices; c != nil && os.Getenv("CAIRN_OTA_TIMELINE") != "" {
			b.Logf("%s wave %d: %+v", time.Now().Format("15:04:05.000"), got.Status.CurrentWave+1, *c)
		}
		if c := meta.FindStatusCondition(got.Status.Conditions, common.ConditionReady); c != nil && c.Status == "True" {
			return got
		}
	}
	b.Fatalf("Firmware %s not Ready within 10 minutes", fw.Name)
	return nil
}
