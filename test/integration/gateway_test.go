package integration

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
	"github.com/cairn-platform/cairn/controllers"
	xdsserver "github.com/cairn-platform/cairn/dataplane/xds/server"
	"github.com/cairn-platform/cairn/dataplane/xds/xdstest"
)

// startGatewayManager runs the controllers with a real xDS server on a
// loopback port and returns its address and the server.
func startGatewayManager(tb testing.TB) (string, *xdsserver.Server) {
	tb.Helper()
	xdsSrv := xdsserver.New(testLogger(tb))
	runManager(tb, controllers.Config{XDS: xdsSrv})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- xdsSrv.Serve(ctx, addr) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("xDS server: %v", err)
		}
	})
	return addr, xdsSrv
}

// grpcBackend is a real gRPC server in the test network namespace that names
// itself.
func grpcBackend(tb testing.TB, name string) int32 {
	tb.Helper()
	lis := listenInNetns(tb)
	xdstest.ServeBackend(tb, lis, name)
	return int32(lis.Addr().(*net.TCPAddr).Port)
}

// backendService creates a Service and the EndpointSlice that the (absent)
// endpoints controller would, pointing at a backend in the test namespace.
func backendService(tb testing.TB, ns, name string, port int32) {
	tb.Helper()
	portName := "grpc"
	ctx := context.Background()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: portName, Port: 80}}},
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{backendIP}}},
	}
	for _, o := range []client.Object{svc, slice} {
		if err := env.Client.Create(ctx, o); err != nil {
			tb.Fatal(err)
		}
	}
}

func waitServedBy(t *testing.T, c healthpb.HealthClient, header, want string) {
	t.Helper()
	eventually(t, 20*time.Second, func(context.Context) error {
		got, err := xdstest.ServedBy(c, header)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("header %q served by %q, want %q", header, got, want)
		}
		return nil
	})
}

// waitProgrammed waits for the Route's Programmed condition at its current
// generation.
func waitProgrammed(t *testing.T, ns, name string, status metav1.ConditionStatus, reason, msg string) *gatewayv1alpha1.Route {
	t.Helper()
	rt := &gatewayv1alpha1.Route{}
	eventually(t, 20*time.Second, func(ctx context.Context) error {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rt); err != nil {
			return err
		}
		c := meta.FindStatusCondition(rt.Status.Conditions, "Programmed")
		if c == nil || c.Status != status || c.Reason != reason || !strings.Contains(c.Message, msg) || c.ObservedGeneration != rt.Generation {
			return fmt.Errorf("%s Programmed = %+v", name, c)
		}
		return nil
	})
	return rt
}

func applyRoute(t testing.TB, ns, name, doc string) {
	t.Helper()
	objs, err := decodeYAML([]byte(fmt.Sprintf("apiVersion: gateway.cairn.dev/v1alpha1\nkind: Route\nmetadata: {name: %s, namespace: %s}\n%s", name, ns, doc)))
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(objs[0]), client.FieldOwner("cairn-test"), client.ForceOwnership); err != nil {
		t.Fatalf("applying Route %s: %v", name, err)
	}
}

// TestGatewayEndToEnd drives a grpc-go xDS client through Routes stored in
// the real API server, compiled by the manager and served over xDS.
func TestGatewayEndToEnd(t *testing.T) {
	requireEnv(t)
	xdsAddr, _ := startGatewayManager(t)
	ns := newNamespace(t)
	backendService(t, ns, "svc-a", grpcBackend(t, "svc-a"))
	backendService(t, ns, "svc-b", grpcBackend(t, "svc-b"))

	applyRoute(t, ns, "health", `spec:
  gatewayRef: {name: e2e}
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {value: /grpc.health.v1.Health/}}]
    backends: [{service: {name: svc-a, port: 80}}]`)
	applyRoute(t, ns, "canary", `spec:
  gatewayRef: {name: e2e}
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {value: /grpc.health.v1.Health/}, headers: [{name: x-canary, value: "on"}]}]
    backends: [{service: {name: svc-b, port: 80}}]`)
	waitProgrammed(t, ns, "health", metav1.ConditionFalse, "NoProxies", `no proxy of gateway "e2e" is connected`)

	c := xdstest.Client(t, xdsAddr, "e2e-client", "e2e", "shop.example.com")
	t.Run("path and header routing", func(t *testing.T) {
		waitServedBy(t, c, "", "svc-a")
		waitServedBy(t, c, "x-canary", "svc-b")
		waitProgrammed(t, ns, "health", metav1.ConditionTrue, "Programmed", `acknowledged by 1 proxies of gateway "e2e"`)
		waitProgrammed(t, ns, "canary", metav1.ConditionTrue, "Programmed", "")
	})

	t.Run("weighted split", func(t *testing.T) {
		applyRoute(t, ns, "health", `spec:
  gatewayRef: {name: e2e}
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {value: /grpc.health.v1.Health/}}]
    backends: [{service: {name: svc-a, port: 80}, weight: 80}, {service: {name: svc-b, port: 80}, weight: 20}]`)
		waitProgrammed(t, ns, "health", metav1.ConditionTrue, "Programmed", "")
		counts := map[string]int{}
		const n = 1000
		for i := 0; i < n; i++ {
			got, err := xdstest.ServedBy(c, "")
			if err != nil {
				t.Fatal(err)
			}
			counts[got]++
		}
		// 20% of 1000 = 200, σ ≈ 12.6: accept ±4σ.
		if b := counts["svc-b"]; b < 150 || b > 250 || counts["svc-a"]+b != n {
			t.Fatalf("split %v, want about 800/200", counts)
		}
	})

	t.Run("update switches traffic without restarts", func(t *testing.T) {
		applyRoute(t, ns, "health", `spec:
  gatewayRef: {name: e2e}
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {value: /grpc.health.v1.Health/}}]
    backends: [{service: {name: svc-b, port: 80}}]`)
		waitServedBy(t, c, "", "svc-b")
	})

	t.Run("a rejected route is reported and the others keep working", func(t *testing.T) {
		applyRoute(t, ns, "limited", `spec:
  gatewayRef: {name: e2e}
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {value: /grpc.health.v1.Health/}, headers: [{name: x-limited, value: "on"}]}]
    backends: [{service: {name: svc-a, port: 80}}]
    rateLimit: {requests: 5}`)
		rt := waitProgrammed(t, ns, "limited", metav1.ConditionFalse, "Rejected", "proxy e2e-client rejected this route")
		if msg := meta.FindStatusCondition(rt.Status.Conditions, "Programmed").Message; !strings.Contains(msg, "local_ratelimit") {
			t.Errorf("the condition should carry the client's reason: %q", msg)
		}
		waitProgrammed(t, ns, "health", metav1.ConditionTrue, "Programmed", "")
		waitServedBy(t, c, "", "svc-b")
		waitServedBy(t, c, "x-canary", "svc-b")
	})

	t.Run("deleting a route removes it", func(t *testing.T) {
		if err := env.Client.Delete(context.Background(), &gatewayv1alpha1.Route{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "canary"}}); err != nil {
			t.Fatal(err)
		}
		// Requests with the header now match the general route.
		applyRoute(t, ns, "health", `spec:
  gatewayRef: {name: e2e}
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {value: /grpc.health.v1.Health/}}]
    backends: [{service: {name: svc-a, port: 80}}]`)
		waitServedBy(t, c, "x-canary", "svc-a")
	})
}

// BenchmarkRouteUpdateToACK measures the time from a Route update accepted by
// the API server to the grpc-go client acknowledging the configuration that
// carries it, with 1,000 Routes on the gateway.
func BenchmarkRouteUpdateToACK(b *testing.B) {
	if startErr != nil {
		b.Skip(startErr.Error())
	}
	xdsAddr, xdsSrv := startGatewayManager(b)
	// Each run gets its own namespace, gateway and hostname: Routes left by an
	// earlier run would otherwise claim the same matches.
	ns := "bench-" + fmt.Sprint(time.Now().UnixNano())
	gateway, host := ns, ns+".example.com"
	if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	port := grpcBackend(b, "bench")
	const services, routes = 20, 1000
	for s := 0; s < services; s++ {
		backendService(b, ns, fmt.Sprintf("svc-%d", s), port)
	}
	for i := 0; i < routes; i++ {
		applyRoute(b, ns, fmt.Sprintf("r-%d", i), fmt.Sprintf(`spec:
  gatewayRef: {name: %s}
  hostnames: [%s]
  rules:
  - matches: [{path: {type: Exact, value: /r%d}}]
    backends: [{service: {name: svc-%d, port: 80}}]`, gateway, host, i, i%services))
	}
	c := xdstest.Client(b, xdsAddr, "bench-client", gateway, host)
	target := gatewayv1alpha1.Route{}
	key := client.ObjectKey{Namespace: ns, Name: "r-0"}
	programmed := func(gen int64) bool {
		ok, _, _ := xdsSrv.Programmed(gateway, key, gen)
		return ok
	}
	// Steady state: every Route acknowledged and its status written, so the
	// timed updates do not queue behind the first 1,000 status writes.
	deadline := time.Now().Add(120 * time.Second)
	for {
		var list gatewayv1alpha1.RouteList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
		done := 0
		for _, rt := range list.Items {
			if c := meta.FindStatusCondition(rt.Status.Conditions, "Programmed"); c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == rt.Generation {
				done++
			}
		}
		if done == routes {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of the %d routes programmed after 120s", done, routes)
		}
		_, _ = xdstest.ServedBy(c, "") // keep the channel active
		time.Sleep(100 * time.Millisecond)
	}

	var samples []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		applyRoute(b, ns, "r-0", fmt.Sprintf(`spec:
  gatewayRef: {name: %s}
  hostnames: [%s]
  rules:
  - matches: [{path: {type: Exact, value: /r0}}]
    backends: [{service: {name: svc-%d, port: 80}}]`, gateway, host, (i+1)%services))
		if err := env.Client.Get(context.Background(), key, &target); err != nil {
			b.Fatal(err)
		}
		for !programmed(target.Generation) {
			if time.Since(start) > 30*time.Second {
				b.Fatalf("generation %d not acknowledged within 30s", target.Generation)
			}
			time.Sleep(200 * time.Microsecond)
		}
		samples = append(samples, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	pct := func(p float64) float64 {
		return float64(samples[int(p*float64(len(samples)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
