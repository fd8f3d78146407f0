// Command bpfkit runs eBPF tracers and XDP filters from one binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run())
}

// run returns the exit code; every deferred cleanup has run by then.
func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A closed pipe (bpfkit ... | head) must come back as EPIPE from
	// write, not kill the process before it detaches.
	signal.Ignore(syscall.SIGPIPE)

	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		if errors.Is(err, syscall.EPIPE) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "bpfkit: %v\n", err)
		return 1
	}
	return 0
}
