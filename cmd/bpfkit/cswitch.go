package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/trace/cswitch"
)

func init() { addTool(&cswitch.Tool, newCswitchCmd) }

func newCswitchCmd(g *globalFlags) *cobra.Command {
	var (
		cfg        cswitch.Config
		perProcess bool
		rows       int
	)
	cmd := &cobra.Command{
		Use:   "cswitch [interval] [count]",
		Short: cswitch.Tool.Summary,
		Long: `Count context switches per thread in the kernel at sched_switch, split like
/proc/PID/status: voluntary (the task blocked: I/O, locks, sleeps) and
involuntary (it was preempted while runnable: CPU contention). Every
interval (default 1s) the busiest threads are shown as rates per second;
JSON lines give the exact counts and the interval.`,
		Example: `  bpfkit cswitch                 # every second, top 20 threads
  bpfkit cswitch --per-process 5 3
  bpfkit cswitch -p 1234 -o json`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			ia, err := parseIntervalArgs(args, time.Second)
			if err != nil {
				return err
			}
			cfg.Debug = g.debug
			t, err := cswitch.New(cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			p := output.NewPrinter(os.Stdout, format, cswitch.Fields(perProcess))
			var health healthReport
			defer func() { health.report(t.Health()) }()
			return ia.every(cmd.Context(), func(now time.Time, elapsed time.Duration) error {
				counts, err := t.Delta()
				if err != nil {
					return err
				}
				if perProcess {
					counts = cswitch.PerProcess(counts)
				}
				top := cswitch.Top(counts, rows)
				out := make([]cswitch.Row, len(top))
				for i, c := range top {
					out[i] = cswitch.Row{Time: now, Interval: elapsed, Count: c}
				}
				return printSample(p, format == output.Table, out, &health, t.Health())
			})
		},
	}
	f := cmd.Flags()
	addFilterFlags(f, &cfg.Filter, "count", "pid tid name cgroup")
	f.BoolVar(&perProcess, "per-process", false, "add up the threads of each process")
	addRows(f, &rows, 20, "show this many busiest rows per interval")
	return cmd
}
