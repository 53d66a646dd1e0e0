package server

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cairn-platform/cairn/dataplane/xds/translate"
)

// deltaClient speaks incremental xDS the way Envoy does; grpc-go only speaks
// state of the world, so delta is tested with this small raw client.
type deltaClient struct {
	t      *testing.T
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	node   *corev3.Node
}

func newDeltaClient(t *testing.T, addr, id string) *deltaClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &deltaClient{t: t, stream: stream, node: &corev3.Node{Id: id, Cluster: "public", UserAgentName: "envoy"}}
}

func (d *deltaClient) subscribe(typeURL string, names ...string) {
	d.t.Helper()
	req := &discoveryv3.DeltaDiscoveryRequest{Node: d.node, TypeUrl: typeURL, ResourceNamesSubscribe: names}
	if err := d.stream.Send(req); err != nil {
		d.t.Fatal(err)
	}
}

func (d *deltaClient) recv() *discoveryv3.DeltaDiscoveryResponse {
	d.t.Helper()
	got := make(chan *discoveryv3.DeltaDiscoveryResponse, 1)
	errs := make(chan error, 1)
	go func() {
		r, err := d.stream.Recv()
		if err != nil {
			errs <- err
			return
		}
		got <- r
	}()
	select {
	case r := <-got:
		return r
	case err := <-errs:
		d.t.Fatal(err)
	case <-time.After(10 * time.Second):
		d.t.Fatal("no delta response within 10s")
	}
	return nil
}

func (d *deltaClient) ack(r *discoveryv3.DeltaDiscoveryResponse) {
	d.t.Helper()
	if err := d.stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce}); err != nil {
		d.t.Fatal(err)
	}
}

func (d *deltaClient) nack(r *discoveryv3.DeltaDiscoveryResponse, msg string) {
	d.t.Helper()
	if err := d.stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce, ErrorDetail: &status.Status{Code: 3, Message: msg}}); err != nil {
		d.t.Fatal(err)
	}
}

func TestDeltaXDS(t *testing.T) {
	e := newEnv(t)
	e.cluster.setRoutes(route("main", 1, "", backendWeight{"svc-a", 1}), route("canary", 2, "x-canary", backendWeight{"svc-b", 1}))
	d := newDeltaClient(t, e.addr, "envoy-1")

	// Envoy's order: listeners and clusters (wildcard), then what they name.
	d.subscribe(resourcev3.ListenerType)
	lds := d.recv()
	if len(lds.Resources) != 1 || lds.Resources[0].Name != translate.EnvoyListenerName("public") {
		t.Fatalf("listeners = %v", names(lds))
	}
	d.ack(lds)
	d.subscribe(resourcev3.ClusterType)
	cds := d.recv()
	if len(cds.Resources) != 2 {
		t.Fatalf("clusters = %v, want the two Service clusters", names(cds))
	}
	d.ack(cds)
	d.subscribe(resourcev3.RouteType, translate.EnvoyRouteConfigName("public"))
	rds := d.recv()
	d.ack(rds)
	d.subscribe(resourcev3.EndpointType, "shop/svc-a:80", "shop/svc-b:80")
	eds := d.recv()
	if len(eds.Resources) != 2 {
		t.Fatalf("endpoints = %v", names(eds))
	}
	d.ack(eds)
	expectProgrammed(t, e.srv, "main", 1, true, "Programmed", "acknowledged by 1 proxies")

	// A change sends only what changed: the route table, and the removal of
	// the cluster no Route uses any more; never the listener again.
	e.cluster.setRoutes(route("main", 3, "", backendWeight{"svc-b", 1}), route("canary", 2, "x-canary", backendWeight{"svc-b", 1}))
	var rds2 *discoveryv3.DeltaDiscoveryResponse
	removed := map[string]bool{}
	for rds2 == nil {
		upd := d.recv()
		switch upd.TypeUrl {
		case resourcev3.RouteType:
			rds2 = upd
			continue
		case resourcev3.ListenerType:
			t.Fatalf("unchanged listener re-sent: %v", names(upd))
		}
		for _, r := range upd.RemovedResources {
			removed[upd.TypeUrl+" "+r] = true
		}
		d.ack(upd)
	}
	if len(rds2.Resources) != 1 {
		t.Fatalf("route update = %v", names(rds2))
	}
	var rc routev3.RouteConfiguration
	if err := rds2.Resources[0].Resource.UnmarshalTo(&rc); err != nil {
		t.Fatal(err)
	}
	if got := rc.VirtualHosts[0].Routes[len(rc.VirtualHosts[0].Routes)-1].GetRoute().GetCluster(); got != "shop/svc-b:80" {
		t.Fatalf("main now sends to %q", got)
	}
	if !removed[resourcev3.ClusterType+" shop/svc-a:80"] {
		t.Errorf("the unused cluster was not removed: %v", removed)
	}
	expectProgrammed(t, e.srv, "main", 3, false, "Pending", "acknowledged by 0 of 1 proxies")
	d.ack(rds2)
	expectProgrammed(t, e.srv, "main", 3, true, "Programmed", "")

	// A NACK naming a route entry takes that route out; the others stay.
	e.cluster.setRoutes(route("main", 4, "", backendWeight{"svc-b", 1}, backendWeight{"svc-b", 2}), route("canary", 2, "x-canary", backendWeight{"svc-b", 1}))
	bad := d.recv()
	if bad.TypeUrl != resourcev3.RouteType {
		t.Fatalf("expected the route table, got %s %v", bad.TypeUrl, names(bad))
	}
	d.nack(bad, `route "shop/main/0/0": some feature this Envoy build lacks`)
	expectProgrammed(t, e.srv, "main", 4, false, "Rejected", "some feature this Envoy build lacks")
	expectProgrammed(t, e.srv, "canary", 2, true, "Programmed", "")
}

func names(r *discoveryv3.DeltaDiscoveryResponse) []string {
	var out []string
	for _, res := range r.Resources {
		out = append(out, res.Name)
	}
	return out
}
