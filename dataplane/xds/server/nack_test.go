package server

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// A state-of-the-world NACK that blames no route leaves the rejected
// configuration current. The stock cache would answer every NACK with it
// again (go-control-plane #962); the server must wait for a new snapshot.
func TestNACKDoesNotTriggerResends(t *testing.T) {
	e := newEnv(t)
	e.cluster.setRoutes(route("main", 1, "", backendWeight{"svc-a", 1}))
	cc, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "envoy-sotw", Cluster: "public", UserAgentName: "envoy"}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	responses := make(chan *discoveryv3.DiscoveryResponse, 100)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				close(responses)
				return
			}
			responses <- r
		}
	}()
	var first *discoveryv3.DiscoveryResponse
	select {
	case first = <-responses:
	case <-time.After(10 * time.Second):
		t.Fatal("no cluster response")
	}
	// NACK it three times, as a confused proxy might, naming nothing we know.
	for i := 0; i < 3; i++ {
		if err := stream.Send(&discoveryv3.DiscoveryRequest{
			TypeUrl: resourcev3.ClusterType, ResponseNonce: first.Nonce,
			ErrorDetail: &status.Status{Code: 3, Message: "unknown field in cluster"},
		}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case r := <-responses:
		t.Fatalf("the rejected configuration was sent again (version %s)", r.VersionInfo)
	case <-time.After(500 * time.Millisecond):
	}
	// The rejection is visible on the routes of that proxy.
	expectProgrammed(t, e.srv, "main", 1, false, "Pending", "proxy envoy-sotw rejected the gateway's configuration: unknown field in cluster")

	// A new snapshot is sent.
	e.cluster.setRoutes(route("main", 2, "", backendWeight{"svc-b", 1}))
	select {
	case r := <-responses:
		if r.VersionInfo == first.VersionInfo {
			t.Fatal("the new response carries the rejected version")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no response after a new snapshot")
	}
}
