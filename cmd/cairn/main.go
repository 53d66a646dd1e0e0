// Command cairn is the command-line client for the Cairn platform.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/cairn-platform/cairn/internal/cli"
	"github.com/cairn-platform/cairn/internal/cli/scancmd"
)

func main() {
	// Cancel in-flight API requests on Ctrl-C instead of leaving them to time out.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr},
		scancmd.NewSBOMCommand(), scancmd.NewScanCommand())
	stop()
	os.Exit(code)
}
