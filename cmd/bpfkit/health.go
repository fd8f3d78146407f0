package main

import (
	"fmt"
	"os"

	"github.com/bpfkit/bpfkit/pkg/loader"
)

// healthReport tells the user on stderr what a tool missed, the one way
// every command does: entries its kernel tables had no room for and the
// runs the kernel skipped, each when it has grown since the last report.
// Records the ring buffer had no room for are reported by the loop that
// reads the ring (stream, sched record), as they happen and in its summary.
type healthReport struct{ lost, missed uint64 }

// report says what has grown in h since the last report.
func (r *healthReport) report(h loader.Health) {
	if h.Full != "" && h.Lost > r.lost {
		fmt.Fprintf(os.Stderr, "bpfkit: %d %s\n", h.Lost, h.Full)
		r.lost = h.Lost
	}
	if h.Missed > r.missed {
		warnMissed(h.Missed)
		r.missed = h.Missed
	}
}

// reportHealth reports a tool's health once, at the end of its command;
// warnDropped has said at its start which hooks it lacks.
func reportHealth(h loader.Health) { new(healthReport).report(h) }
