// Package xdstest provides the real parts xDS tests route between: gRPC
// backends that say who served a call, and grpc-go xDS clients.
package xdstest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/xds"
)

// BackendHeader names the response header carrying the backend's name.
const BackendHeader = "x-backend"

// ServeBackend serves the gRPC health service on lis, answering every call
// with the backend's name in BackendHeader, until the test ends.
func ServeBackend(tb testing.TB, lis net.Listener, name string) {
	tb.Helper()
	s := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		_ = grpc.SetHeader(ctx, metadata.Pairs(BackendHeader, name))
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(s, health.NewServer())
	go func() { _ = s.Serve(lis) }()
	tb.Cleanup(s.Stop)
}

// Client is a grpc-go channel to xds:///target whose xDS node is nodeID in
// the given cluster (the gateway), fetching from the server at xdsAddr.
func Client(tb testing.TB, xdsAddr, nodeID, cluster, target string) healthpb.HealthClient {
	tb.Helper()
	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": %q, "cluster": %q}
	}`, xdsAddr, nodeID, cluster)
	resolver, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		tb.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cc.Close() })
	return healthpb.NewHealthClient(cc)
}

// ServedBy makes one call, with header set to "on" when not empty, and
// returns the name of the backend that answered.
func ServedBy(c healthpb.HealthClient, header string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if header != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, header, "on")
	}
	var md metadata.MD
	if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&md)); err != nil {
		return "", err
	}
	return strings.Join(md.Get(BackendHeader), ","), nil
}
