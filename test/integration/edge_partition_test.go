package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
)

// TestEdgePartition cuts an agent off the hub while both sides edit the
// twin, restarts the agent during the partition, heals it, and checks that
// nothing is lost and that concurrent edits of one property are resolved by
// the documented rule (the later hybrid-logical-clock write wins).
func TestEdgePartition(t *testing.T) { forEachBroker(t, testEdgePartition) }

func testEdgePartition(t *testing.T, e *edgeEnv) {
	ctx := context.Background()
	token := e.device(t, "pump", map[string]string{"setpoint": "20", "mode": `"auto"`, "fan": "1"})
	proxy := newCutProxy(t, e.hubAddr)
	dir := t.TempDir()
	a, stop := e.agent(t, "pump", token, dir, proxy.addr())
	waitDesired(t, a.Desired, "fan", "1")

	proxy.setCut(true)
	e.waitDevice(t, "pump", func(d *edgev1alpha1.EdgeDevice) error { return conditionIs(d, "Online", metav1.ConditionFalse) })

	// mode: the device edits first, the cluster later: the cluster wins.
	if err := a.SetDesired(ctx, "mode", json.RawMessage(`"manual"`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	updateDesired(t, e.ns, "pump", map[string]string{"setpoint": "25", "mode": `"eco"`, "light": "true"})
	e.waitDevice(t, "pump", func(d *edgev1alpha1.EdgeDevice) error { return fieldIs(d.Status.Desired, "setpoint", "25") })
	// setpoint: the cluster edited it, the device edits it later: the
	// device wins.
	time.Sleep(10 * time.Millisecond)
	if err := a.SetDesired(ctx, "setpoint", json.RawMessage(`18`)); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := range 20 {
		k := "r" + strconv.Itoa(i)
		if err := a.SetReported(ctx, k, json.RawMessage(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		want[k] = strconv.Itoa(i)
	}

	// The agent restarts during the partition: its edits are on disk.
	stop()
	a, _ = e.agent(t, "pump", token, dir, proxy.addr())
	if got := string(a.Desired()["setpoint"]); got != "18" {
		t.Fatalf("after a restart the agent's setpoint is %q; want its own edit 18", got)
	}
	for i := 20; i < 30; i++ {
		k := "r" + strconv.Itoa(i)
		if err := a.SetReported(ctx, k, json.RawMessage(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		want[k] = strconv.Itoa(i)
	}
	if err := a.DeleteReported(ctx, "r5"); err != nil {
		t.Fatal(err)
	}
	delete(want, "r5")

	proxy.setCut(false)
	wantDesired := map[string]string{"mode": `"eco"`, "setpoint": "18", "light": "true"}
	e.waitDevice(t, "pump", func(d *edgev1alpha1.EdgeDevice) error {
		if err := conditionIs(d, "Online", metav1.ConditionTrue); err != nil {
			return err
		}
		if lost := missing(d.Status.Reported, want); len(lost) > 0 {
			return fmt.Errorf("reported properties not in status: %v", lost)
		}
		if _, ok := d.Status.Reported["r5"]; ok {
			return fmt.Errorf("r5 was deleted on the device but is in status")
		}
		return sameJSON(d.Status.Desired, wantDesired)
	})
	eventually(t, 30*time.Second, func(context.Context) error {
		got := map[string]apiextensionsv1.JSON{}
		for k, v := range a.Desired() {
			got[k] = apiextensionsv1.JSON{Raw: v}
		}
		return sameJSON(got, wantDesired)
	})
	t.Logf("after the partition: %d reported properties, 0 lost; desired %v", len(want), wantDesired)
}

func updateDesired(t *testing.T, ns, name string, desired map[string]string) {
	t.Helper()
	eventually(t, 10*time.Second, func(ctx context.Context) error {
		d, err := getDevice(ctx, ns, name)
		if err != nil {
			return err
		}
		d.Spec.Desired = jsonMap(desired)
		return env.Client.Update(ctx, d)
	})
}

func missing(got map[string]apiextensionsv1.JSON, want map[string]string) []string {
	var lost []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if string(got[k].Raw) != want[k] {
			lost = append(lost, k)
		}
	}
	return lost
}

func sameJSON(got map[string]apiextensionsv1.JSON, want map[string]string) error {
	if len(got) != len(want) || len(missing(got, want)) > 0 {
		gs := map[string]string{}
		for k, v := range got {
			gs[k] = string(v.Raw)
		}
		return fmt.Errorf("got %v; want %v", gs, want)
	}
	return nil
}
