// Package grpcserve runs a gRPC server for the life of a context.
package grpcserve

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
)

// drainTimeout bounds a graceful stop: streaming clients (proxies on xDS)
// never end their streams by themselves, so they are cut after it.
const drainTimeout = 5 * time.Second

// Serve listens on addr and serves g until ctx ends, then stops gracefully
// within drainTimeout. name labels errors.
func Serve(ctx context.Context, name, addr string, g *grpc.Server) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for %s on %s: %w", name, addr, err)
	}
	go func() {
		<-ctx.Done()
		force := time.AfterFunc(drainTimeout, g.Stop)
		g.GracefulStop()
		force.Stop()
	}()
	if err := g.Serve(lis); err != nil {
		return fmt.Errorf("serving %s: %w", name, err)
	}
	return nil
}
