package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/internal/userfs"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/schedrecord"
)

func init() { addTool(&schedrecord.Tool, newSchedCmd) }

func newSchedCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sched",
		Short: "Scheduler timelines",
	}
	cmd.AddCommand(newSchedRecordCmd(g))
	return cmd
}

func newSchedRecordCmd(g *globalFlags) *cobra.Command {
	var (
		cfg      = schedrecord.Config{Wakeups: true, MaxEvents: schedrecord.DefaultMaxEvents}
		path     string
		duration time.Duration
		noWakeup bool
	)
	cmd := &cobra.Command{
		Use:   "record",
		Short: schedrecord.Tool.Summary,
		Long: `Record the context switches (and wakeups) of every CPU and write them in the
trace-event JSON format that ui.perfetto.dev and chrome://tracing open: one
track per CPU, with a slice for each time a task ran, named "comm (tid)",
and its end state (S sleeping, D uninterruptible, R+ preempted).`,
		Example: `  bpfkit sched record -w trace.json --duration 5s
  bpfkit sched record -w trace.json --max-events 200000   # until Ctrl-C or the cap`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return fmt.Errorf("give the trace file to write with -w, e.g. -w trace.json (- for standard output)")
			}
			cfg.Wakeups = !noWakeup
			cfg.Debug = g.debug
			r, err := schedrecord.New(cfg)
			if err != nil {
				return err
			}
			defer r.Close()
			// Only now, with every flag valid and the programs loaded: a
			// temporary file beside path, renamed over it when complete.
			out, err := userfs.Create(path)
			if err != nil {
				return fmt.Errorf("create the trace file: %w", err)
			}
			defer out.Abort()
			ctx := cmd.Context()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			fmt.Fprintf(os.Stderr, "Recording context switches into %s... Hit Ctrl-C to end.\n", path)
			st, err := r.Record(ctx, out, func(total uint64) {
				fmt.Fprintf(os.Stderr, "bpfkit: lost %d events (raise --ring-size)\n", total)
			})
			if err != nil {
				return err
			}
			if err := out.Commit(); err != nil {
				return fmt.Errorf("write the trace file: %w", err)
			}
			if st.Capped {
				fmt.Fprintf(os.Stderr, "bpfkit: stopped at the cap of %d events (--max-events)\n", cfg.MaxEvents)
			}
			fmt.Fprintf(os.Stderr, "bpfkit: %d switches, %d wakeups, %d trace events written to %s, %d lost\n",
				st.Switches, st.Wakeups, st.Written, path, st.Lost)
			reportHealth(r.Health())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&path, "write", "w", "", "trace file to write (trace-event JSON; - for standard output)")
	f.VarP(flagval.Duration(&duration), "duration", "d", "stop after this long (e.g. 5s; 0: until Ctrl-C)")
	f.Uint64Var(&cfg.MaxEvents, "max-events", cfg.MaxEvents, "stop after writing this many trace events (0: no cap)")
	f.BoolVar(&noWakeup, "no-wakeups", false, "record switches only")
	addRingSize(f, &cfg.RingSize, loader.DefaultRingSize)
	return cmd
}
