package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/trace/offcputime"
)

func init() { addTool(&offcputime.Tool, newOffcputimeCmd) }

func newOffcputimeCmd(g *globalFlags) *cobra.Command {
	var (
		cfg          offcputime.Config
		states       string
		minUS, maxUS uint64
		duration     time.Duration
		folded       bool
	)
	cmd := &cobra.Command{
		Use:   "offcputime [duration]",
		Short: offcputime.Tool.Summary,
		Long: `Measure, in the kernel, how long tasks are off CPU between being switched out
and back in, added up per thread and pair of stacks (where they blocked).
Prints the stacks when the duration ends or at Ctrl-C, the most time last
like bcc, or folded for flame graphs (-f).`,
		Example: `  bpfkit offcputime 5                    # 5 seconds, whole machine
  bpfkit offcputime -p 1234 --state D     # uninterruptible sleeps of one process
  bpfkit offcputime -f 10 > out.folded    # flamegraph.pl --color=io out.folded`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				s, err := strconv.ParseFloat(args[0], 64)
				if err != nil || s <= 0 {
					return fmt.Errorf("duration %s: give seconds, e.g. 5", flagval.Quote(args[0]))
				}
				duration = time.Duration(s * float64(time.Second))
			}
			if states != "" {
				if cfg.States, err = offcputime.ParseStates(states); err != nil {
					return err
				}
			}
			cfg.Min = time.Duration(minUS) * time.Microsecond
			cfg.Max = time.Duration(maxUS) * time.Microsecond
			cfg.Debug = g.debug
			t, err := offcputime.New(cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			ctx := cmd.Context()
			if duration > 0 {
				var cancel func()
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			if !folded && format == output.Table {
				fmt.Fprintln(os.Stderr, "Tracing off-CPU time (us)... Hit Ctrl-C to end.")
			}
			<-ctx.Done()
			entries, err := t.Read()
			if err != nil {
				return err
			}
			kernel, user := !cfg.UserOnly, !cfg.KernelOnly
			if format == output.JSON {
				p := output.NewPrinter(os.Stdout, format, offcputime.Fields())
				for i := range entries {
					if err := p.Print(&entries[i]); err != nil {
						return err
					}
				}
				err = p.Flush()
			} else {
				// Like bcc: the most time last, nearest the prompt.
				slices.Reverse(entries)
				var b []byte
				for i := range entries {
					if folded {
						b = offcputime.AppendFolded(b, &entries[i], kernel, user)
					} else {
						b = offcputime.AppendText(b, &entries[i], kernel, user)
					}
				}
				_, err = os.Stdout.Write(b)
			}
			reportHealth(t.Health())
			return err
		},
	}
	f := cmd.Flags()
	addFilterFlags(f, &cfg.Filter, "trace", "pid tid name cgroup")
	f.StringVar(&states, "state", "", "only tasks switched out in these states: S (sleeping), D (uninterruptible), R (preempted); e.g. D or S,D")
	f.Uint64VarP(&minUS, "min-block-time", "m", 1, "only off-CPU periods of at least this many µs")
	f.Uint64VarP(&maxUS, "max-block-time", "M", 0, "only off-CPU periods of at most this many µs (0: no limit)")
	f.BoolVarP(&cfg.KernelOnly, "kernel-stacks-only", "k", false, "kernel stacks only")
	f.BoolVarP(&cfg.UserOnly, "user-stacks-only", "u", false, "user stacks only")
	f.BoolVarP(&folded, "folded", "f", false, "folded output for flame graphs: comm;frames... µs")
	f.VarP(flagval.Duration(&duration), "duration", "d", "stop after this long (e.g. 10s; 0: until Ctrl-C); the [duration] argument is in seconds")
	return cmd
}
