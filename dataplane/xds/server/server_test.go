package server

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/xds/translate"
	"github.com/cairn-platform/cairn/dataplane/xds/xdstest"
)

// backend is a real gRPC server on loopback that names itself.
func backend(t *testing.T, name string) int32 {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	xdstest.ServeBackend(t, lis, name)
	return int32(lis.Addr().(*net.TCPAddr).Port)
}

// fakeCluster plays the gateway controller: it keeps the objects, translates
// them with the server's exclusions, and publishes on every change.
type fakeCluster struct {
	t      *testing.T
	srv    *Server
	mu     sync.Mutex
	in     translate.Input
	pushes atomic.Int64
}

func (c *fakeCluster) reconcile() {
	c.mu.Lock()
	in := c.in
	in.Routes = append([]gatewayv1alpha1.Route(nil), c.in.Routes...)
	c.mu.Unlock()
	in.Excluded = c.srv.Excluded(in.Gateway)
	if err := c.srv.SetGateway(context.Background(), in.Gateway, translate.Translate(&in)); err != nil {
		c.t.Errorf("SetGateway: %v", err)
	}
	c.pushes.Add(1)
}

func (c *fakeCluster) setRoutes(routes ...gatewayv1alpha1.Route) {
	c.mu.Lock()
	c.in.Routes = routes
	c.mu.Unlock()
	c.reconcile()
}

func service(name string, port int32) (corev1.Service, discoveryv1.EndpointSlice) {
	portName := "grpc"
	return corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: portName, Port: 80}}},
		}, discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			Ports:      []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
			Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}}},
		}
}

type backendWeight struct {
	svc    string
	weight int32
}

func route(name string, gen int64, header string, backends ...backendWeight) gatewayv1alpha1.Route {
	m := gatewayv1alpha1.RouteMatch{Path: &gatewayv1alpha1.PathMatch{Type: gatewayv1alpha1.PathMatchPrefix, Value: "/grpc.health.v1.Health/"}}
	if header != "" {
		v := "on"
		m.Headers = []gatewayv1alpha1.HeaderMatch{{Name: header, Type: gatewayv1alpha1.StringMatchExact, Value: &v}}
	}
	rule := gatewayv1alpha1.RouteRule{Matches: []gatewayv1alpha1.RouteMatch{m}}
	for _, b := range backends {
		w := b.weight
		rule.Backends = append(rule.Backends, gatewayv1alpha1.Backend{Service: &gatewayv1alpha1.ServiceBackend{Name: b.svc, Port: 80}, Weight: &w})
	}
	return gatewayv1alpha1.Route{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Generation: gen, CreationTimestamp: metav1.NewTime(time.Unix(gen, 0))},
		Spec: gatewayv1alpha1.RouteSpec{
			GatewayRef: gatewayv1alpha1.GatewayReference{Name: "public"},
			Hostnames:  []gatewayv1alpha1.Hostname{"shop.example.com"},
			Rules:      []gatewayv1alpha1.RouteRule{rule},
		},
	}
}

type env struct {
	srv     *Server
	addr    string
	cluster *fakeCluster
	changes chan string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{changes: make(chan string, 1024)}
	e.srv = New(testr.New(t))
	e.srv.OnChange(func(gw string) {
		select {
		case e.changes <- gw:
		default:
		}
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	e.srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	e.addr = lis.Addr().String()

	e.cluster = &fakeCluster{t: t, srv: e.srv, in: translate.Input{Gateway: "public"}}
	for _, b := range []string{"svc-a", "svc-b"} {
		svc, slice := service(b, backend(t, b))
		e.cluster.in.Services = append(e.cluster.in.Services, svc)
		e.cluster.in.EndpointSlices = append(e.cluster.in.EndpointSlices, slice)
	}
	// Status changes (ACKs, NACKs) trigger a new translation, as the
	// controller's watch on the server does.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-e.changes:
				e.cluster.reconcile()
			}
		}
	}()
	return e
}

// client is a grpc-go channel to xds:///shop.example.com through our server.
func (e *env) client(t *testing.T, nodeID string) healthpb.HealthClient {
	return xdstest.Client(t, e.addr, nodeID, "public", "shop.example.com")
}

func call(c healthpb.HealthClient, header string) (string, error) { return xdstest.ServedBy(c, header) }

func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func expectBackend(t *testing.T, c healthpb.HealthClient, header, want string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("requests with header %q reach %s", header, want), func() error {
		got, err := call(c, header)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("served by %q", got)
		}
		return nil
	})
}

func expectProgrammed(t *testing.T, srv *Server, name string, gen int64, want bool, reason, msg string) {
	t.Helper()
	waitFor(t, "Programmed of "+name, func() error {
		ok, r, m := srv.Programmed("public", types.NamespacedName{Namespace: "shop", Name: name}, gen)
		if ok != want || r != reason || !strings.Contains(m, msg) {
			return fmt.Errorf("got %v/%s %q, want %v/%s containing %q", ok, r, m, want, reason, msg)
		}
		return nil
	})
}

func TestGRPCClientFollowsRoutes(t *testing.T) {
	e := newEnv(t)
	e.cluster.setRoutes(
		route("main", 1, "", backendWeight{"svc-a", 1}),
		route("canary", 2, "x-canary", backendWeight{"svc-b", 1}),
	)
	expectProgrammed(t, e.srv, "main", 1, false, "NoProxies", `no proxy of gateway "public" is connected`)

	c := e.client(t, "client-1")
	t.Run("path and header matching", func(t *testing.T) {
		expectBackend(t, c, "", "svc-a")
		expectBackend(t, c, "x-canary", "svc-b")
		expectProgrammed(t, e.srv, "main", 1, true, "Programmed", "acknowledged by 1 proxies")
		expectProgrammed(t, e.srv, "canary", 2, true, "Programmed", "acknowledged by 1 proxies")
	})

	t.Run("weighted split", func(t *testing.T) {
		e.cluster.setRoutes(
			route("main", 3, "", backendWeight{"svc-a", 75}, backendWeight{"svc-b", 25}),
			route("canary", 2, "x-canary", backendWeight{"svc-b", 1}),
		)
		expectProgrammed(t, e.srv, "main", 3, true, "Programmed", "")
		const n = 800
		counts := map[string]int{}
		for i := 0; i < n; i++ {
			got, err := call(c, "")
			if err != nil {
				t.Fatal(err)
			}
			counts[got]++
		}
		// 25% of 800 = 200, σ ≈ 12.2: ±4σ.
		if b := counts["svc-b"]; b < 151 || b > 249 || counts["svc-a"]+b != n {
			t.Fatalf("split %v, want about 600/200", counts)
		}
	})

	t.Run("update switches traffic", func(t *testing.T) {
		e.cluster.setRoutes(
			route("main", 4, "", backendWeight{"svc-b", 1}),
			route("canary", 2, "x-canary", backendWeight{"svc-b", 1}),
		)
		expectBackend(t, c, "", "svc-b")
	})

	t.Run("deleting a route removes it", func(t *testing.T) {
		e.cluster.setRoutes(route("canary", 2, "x-canary", backendWeight{"svc-a", 1}))
		waitFor(t, "requests without the header find no route", func() error {
			if got, err := call(c, ""); err == nil {
				return fmt.Errorf("still served by %s", got)
			}
			return nil
		})
		expectBackend(t, c, "x-canary", "svc-a")
	})
}

func TestRejectedRouteIsReportedAndOthersKeepWorking(t *testing.T) {
	e := newEnv(t)
	e.cluster.setRoutes(route("main", 1, "", backendWeight{"svc-a", 1}))
	c := e.client(t, "client-nack")
	expectBackend(t, c, "", "svc-a")

	// grpc-go cannot enforce a local rate limit, so Cairn sends it as a
	// required per-route filter config and the client refuses the table.
	limited := route("limited", 2, "x-limited", backendWeight{"svc-b", 1})
	limited.Spec.Rules[0].RateLimit = &gatewayv1alpha1.RateLimit{Requests: 5, Unit: "Second"}
	e.cluster.setRoutes(route("main", 1, "", backendWeight{"svc-a", 1}), limited)

	expectProgrammed(t, e.srv, "limited", 2, false, "Rejected", "proxy client-nack rejected this route")
	_, _, msg := e.srv.Programmed("public", types.NamespacedName{Namespace: "shop", Name: "limited"}, 2)
	if !strings.Contains(msg, "local_ratelimit") {
		t.Errorf("the rejection should carry the client's reason, got %q", msg)
	}
	// The rest still works and is (still) programmed.
	expectBackend(t, c, "", "svc-a")
	expectProgrammed(t, e.srv, "main", 1, true, "Programmed", "")
	if _, err := call(c, "x-limited"); err == nil {
		// The rejected route is not served; the request falls to "main".
		if got, _ := call(c, "x-limited"); got != "svc-a" {
			t.Errorf("request for the rejected route served by %q", got)
		}
	}

	// No resend storm (go-control-plane #962): once the rejected route is
	// out, the server sends nothing until something changes.
	if n := testutil.ToFloat64(e.srv.metrics.nacks.WithLabelValues("public", resourcev3.RouteType)); n < 1 {
		t.Fatalf("NACKs counted: %v", n)
	}
	before := testutil.ToFloat64(e.srv.metrics.responses.WithLabelValues(resourcev3.RouteType))
	time.Sleep(500 * time.Millisecond)
	if extra := testutil.ToFloat64(e.srv.metrics.responses.WithLabelValues(resourcev3.RouteType)) - before; extra > 0 {
		t.Errorf("%v route tables sent in 500ms with nothing changing", extra)
	}
	if got := testutil.ToFloat64(e.srv.metrics.proxies.WithLabelValues("public", "grpc")); got != 1 {
		t.Errorf("connected grpc proxies = %v", got)
	}

	// Fixing the route (new generation) lifts the exclusion.
	fixed := route("limited", 3, "x-limited", backendWeight{"svc-b", 1})
	e.cluster.setRoutes(route("main", 1, "", backendWeight{"svc-a", 1}), fixed)
	expectBackend(t, c, "x-limited", "svc-b")
	expectProgrammed(t, e.srv, "limited", 3, true, "Programmed", "")
}
