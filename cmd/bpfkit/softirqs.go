package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/trace/softirqs"
)

func init() { addTool(&softirqs.Tool, newSoftirqsCmd) }

func newSoftirqsCmd(g *globalFlags) *cobra.Command {
	var (
		cfg          softirqs.Config
		perCPU, dist bool
		timestamps   bool
	)
	cmd := &cobra.Command{
		Use:   "softirqs [interval] [count]",
		Short: softirqs.Tool.Summary,
		Long: `Measure in the kernel, from irq:softirq_entry to irq:softirq_exit, the time
each softirq vector (NET_RX, TIMER, RCU, ... as /proc/softirqs names them)
runs, summed over the CPUs or per CPU (-C), with the number of runs and,
with -d, log2 histograms of their lengths. Without an interval the totals
are printed once, at Ctrl-C.`,
		Example: `  bpfkit softirqs 1 5             # every second, 5 times
  bpfkit softirqs -C -d 10        # per CPU histograms every 10 s
  bpfkit softirqs -o json 1`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			ia, err := parseIntervalArgs(args, 99999*time.Hour)
			if err != nil {
				return err
			}
			cfg.Debug = g.debug
			cfg.NoHistograms = !dist
			t, err := softirqs.New(cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			warnDropped(t.Health().Dropped)
			unit := "usecs"
			if cfg.Nanoseconds {
				unit = "nsecs"
			}
			if format == output.Table && len(args) == 0 {
				fmt.Fprintln(os.Stderr, "Tracing soft irq event time... Hit Ctrl-C to end.")
			}
			p := output.NewPrinter(os.Stdout, format, softirqs.Fields(perCPU, dist))
			var health healthReport
			var text []byte
			return ia.every(cmd.Context(), func(now time.Time, elapsed time.Duration) error {
				stats, err := t.Delta()
				if err != nil {
					return err
				}
				if !perCPU {
					stats = softirqs.AllCPUs(stats)
				}
				if format == output.Table {
					text = text[:0]
					if timestamps {
						text = now.AppendFormat(append(text, '\n'), "15:04:05\n")
					}
					if _, err := os.Stdout.Write(text); err != nil {
						return err
					}
					if !dist {
						fmt.Fprintln(os.Stdout)
						if err := p.Header(); err != nil {
							return err
						}
					}
				}
				for i := range stats {
					r := &softirqs.Row{Time: now, Interval: elapsed, Unit: unit, Stat: stats[i]}
					if format == output.Table && dist {
						if _, err := os.Stdout.Write(softirqs.AppendHist(nil, r)); err != nil {
							return err
						}
						continue
					}
					if err := p.Print(r); err != nil {
						return err
					}
				}
				health.report(t.Health())
				return p.Flush()
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&dist, "dist", "d", false, "show log2 histograms of the runs' lengths")
	f.BoolVarP(&perCPU, "cpus", "C", false, "one row (or histogram) per CPU")
	f.BoolVarP(&cfg.Nanoseconds, "nanoseconds", "N", false, "histograms in nanoseconds")
	f.BoolVarP(&timestamps, "timestamp", "T", false, "print the time with each output")
	return cmd
}
