package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/loader"
)

// runFlags are the flags of every streaming tracer: when to stop.
type runFlags struct {
	duration time.Duration
	count    uint64
}

func (r *runFlags) register(cmd *cobra.Command) {
	cmd.Flags().VarP(flagval.Duration(&r.duration), "duration", "d", "stop after this long (e.g. 10s, 5m; 0: until Ctrl-C)")
	cmd.Flags().Uint64Var(&r.count, "count", 0, "stop after this many events")
}

// stream runs a tracer into a printer until Ctrl-C, SIGTERM, --duration or
// --count, reporting lost events on stderr as they happen and a summary at
// the end.
func stream[E any](ctx context.Context, r *runFlags, p *output.Printer[E],
	run func(context.Context, loader.StreamOptions, func(*E) error) (loader.Stats, error)) error {
	if r.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.duration)
		defer cancel()
	}
	if err := p.Header(); err != nil {
		return err
	}
	var printed uint64
	st, err := run(ctx, loader.StreamOptions{
		Flush: p.Flush,
		Lost:  func(total uint64) { fmt.Fprintf(os.Stderr, "bpfkit: lost %d events\n", total) },
	}, func(e *E) error {
		if err := p.Print(e); err != nil {
			return err
		}
		printed++
		if r.count > 0 && printed >= r.count {
			return loader.ErrStop
		}
		return nil
	})
	if ferr := p.Flush(); err == nil {
		err = ferr
	}
	if st.Lost > 0 {
		fmt.Fprintf(os.Stderr, "bpfkit: lost %d events\n", st.Lost)
	}
	fmt.Fprintf(os.Stderr, "bpfkit: %d events, %d lost\n", printed, st.Lost)
	return err
}

// warnMissed says on stderr how many times the kernel skipped the tool's
// programs (loader.Objects.Missed): events the ring buffer never saw.
func warnMissed(m uint64) {
	if m > 0 {
		fmt.Fprintf(os.Stderr, "bpfkit: the kernel skipped this tool's programs %d times (another BPF program was running on that CPU): events may be missing\n", m)
	}
}

// warnDropped says on stderr which of the tool's hooks this kernel lacks
// (loader.Objects.Dropped): what goes through them is not seen.
func warnDropped(dropped map[string]error) {
	if len(dropped) == 0 {
		return
	}
	why := make([]string, 0, len(dropped))
	for hook, err := range dropped {
		why = append(why, fmt.Sprintf("%s (%v)", hook, err))
	}
	slices.Sort(why)
	fmt.Fprintf(os.Stderr, "bpfkit: not traced on this kernel: %s\n", strings.Join(why, "; "))
}
