package funchost

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	h, err := New(context.Background(), Options{CacheDir: cacheDir, Logger: testr.New(t), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	f, err := h.Load(context.Background(), "echo", goGuest, Config{Timeout: 200 * time.Millisecond, MinInstances: 2, MaxRequestBytes: 8})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		invoke(t, f, "/echo", "hi")
	}
	for path, want := range map[string]error{"/grow": ErrTrap, "/loop": ErrTimeout} {
		if _, err := f.Invoke(context.Background(), Request{Path: path}); !errors.Is(err, want) {
			t.Fatalf("%s: got %v, want %v", path, err, want)
		}
	}
	if _, err := f.Invoke(context.Background(), Request{Path: "/echo", Body: []byte("too long a body")}); !errors.Is(err, ErrRequestTooLarge) {
		t.Fatalf("got %v, want %v", err, ErrRequestTooLarge)
	}
	// The HTTP front refuses a body over the limit before invoking: counted
	// too, without a duration sample.
	rec := httptest.NewRecorder()
	Handler{Function: f}.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/echo", strings.NewReader("too long a body")))
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("HTTP status %d, want 413", rec.Code)
	}

	invocations := h.metrics.invocations
	for res, want := range map[string]float64{resultOK: 3, resultTrap: 1, resultTimeout: 1, resultTooLarge: 2, resultClosed: 0} {
		if got := testutil.ToFloat64(invocations.WithLabelValues("echo", res)); got != want {
			t.Errorf("invocations{result=%q} = %v, want %v", res, got, want)
		}
	}
	if n := testutil.CollectAndCount(reg, "cairn_funchost_invocation_duration_seconds"); n != 1 {
		t.Errorf("%d duration series, want 1", n)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP cairn_funchost_instances Instances of loaded functions, by function and state: live (busy or idle) or idle.
# TYPE cairn_funchost_instances gauge
cairn_funchost_instances{function="echo",state="idle"} 2
cairn_funchost_instances{function="echo",state="live"} 2
`), "cairn_funchost_instances"); err != nil {
		t.Error(err)
	}
	count := func(name string) uint64 {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range families {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetHistogram().GetSampleCount()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	if got := count("cairn_funchost_invocation_duration_seconds"); got != 6 {
		t.Errorf("%d durations observed, want 6", got)
	}
	if got := count("cairn_funchost_compile_duration_seconds"); got != 1 {
		t.Errorf("%d compilations observed, want 1", got)
	}

	// Closing the only Function of a name drops its series.
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cairn_funchost_invocations_total", "cairn_funchost_invocation_duration_seconds", "cairn_funchost_instances"} {
		if n := testutil.CollectAndCount(reg, name); n != 0 {
			t.Errorf("%d series of %s after Close, want 0", n, name)
		}
	}
}

func TestMetricsSurviveAnUpdate(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	h, err := New(context.Background(), Options{CacheDir: cacheDir, Logger: testr.New(t), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	old, err := h.Load(context.Background(), "fn", echoReactor(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	invoke(t, old, "/", "a")
	updated, err := h.Load(context.Background(), "fn", echoReactor(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	invoke(t, updated, "/", "b")
	if got := testutil.ToFloat64(h.metrics.invocations.WithLabelValues("fn", resultOK)); got != 2 {
		t.Errorf("ok invocations = %v, want 2 across the update", got)
	}
}

func TestNewFailsOnDuplicateRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := New(context.Background(), Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	if h2, err := New(context.Background(), Options{Registerer: reg}); err == nil {
		h2.Close(context.Background())
		t.Fatal("second Host registered the same metrics")
	}
}
