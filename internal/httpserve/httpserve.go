// Package httpserve runs an HTTP server for the life of a context, as
// grpcserve does for gRPC.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// drainTimeout bounds a graceful shutdown.
const drainTimeout = 10 * time.Second

// Serve listens on addr and serves h until ctx ends, then shuts down
// gracefully within drainTimeout. ReadTimeout bounds slow request bodies
// (webhook deliveries, scan requests); there is no WriteTimeout, since
// downloads of big firmware images take long. listening, when not nil, is
// called with the bound address. name labels errors.
func Serve(ctx context.Context, name, addr string, h http.Handler, listening func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for %s on %s: %w", name, addr, err)
	}
	if listening != nil {
		listening(ln.Addr())
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, MaxHeaderBytes: 64 << 10}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), drainTimeout)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving %s: %w", name, err)
	}
	return nil
}
