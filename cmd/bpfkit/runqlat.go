package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/trace/runqlat"
)

func init() { addTool(&runqlat.Tool, newRunqlatCmd) }

func newRunqlatCmd(g *globalFlags) *cobra.Command {
	var (
		cfg                        runqlat.Config
		perProcess, perThread, nss bool
		timestamps                 bool
	)
	cmd := &cobra.Command{
		Use:   "runqlat [interval] [count]",
		Short: runqlat.Tool.Summary,
		Long: `Measure, in the kernel, the time from a task becoming runnable (woken, or
preempted while runnable) to it running, into log2 histograms. Without an
interval the histogram is printed once, at Ctrl-C.`,
		Example: `  bpfkit runqlat                  # until Ctrl-C
  bpfkit runqlat -m 5 3          # in ms, every 5 s, 3 times
  bpfkit runqlat -P -p 1234      # one process
  bpfkit runqlat -o json 1       # JSON lines`,
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
			switch {
			case perProcess && perThread, perProcess && nss, perThread && nss:
				return fmt.Errorf("choose one of -P, -L and --pidnss")
			case perProcess:
				cfg.Key = runqlat.ByProcess
			case perThread:
				cfg.Key = runqlat.ByThread
			case nss:
				cfg.Key = runqlat.ByPIDNS
			}
			cfg.Debug = g.debug
			t, err := runqlat.New(cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			unit := "usecs"
			if cfg.Milliseconds {
				unit = "msecs"
			}
			if format == output.Table && len(args) == 0 {
				fmt.Fprintln(os.Stderr, "Tracing run queue latency... Hit Ctrl-C to end.")
			}
			p := output.NewPrinter(os.Stdout, format, runqlat.Fields(cfg.Key))
			var health healthReport
			defer func() { health.report(t.Health()) }()
			var text []byte
			return ia.every(cmd.Context(), func(now time.Time, _ time.Duration) error {
				hists, err := t.Delta()
				if err != nil {
					return err
				}
				if format == output.Table {
					text = text[:0]
					if timestamps {
						text = append(text, '\n')
						text = now.AppendFormat(text, "15:04:05")
						text = append(text, '\n')
					}
					for i := range hists {
						text = runqlat.AppendText(text, &runqlat.Report{Time: now, Unit: unit, By: cfg.Key, Hist: hists[i]})
					}
					if _, err := os.Stdout.Write(text); err != nil {
						return err
					}
				} else {
					for i := range hists {
						if err := p.Print(&runqlat.Report{Time: now, Unit: unit, By: cfg.Key, Hist: hists[i]}); err != nil {
							return err
						}
					}
				}
				health.report(t.Health())
				return p.Flush()
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&cfg.Milliseconds, "milliseconds", "m", false, "histogram in milliseconds")
	f.BoolVarP(&perProcess, "pids", "P", false, "one histogram per process")
	f.BoolVarP(&perThread, "tids", "L", false, "one histogram per thread")
	f.BoolVar(&nss, "pidnss", false, "one histogram per pid namespace")
	f.BoolVarP(&timestamps, "timestamp", "T", false, "print the time with each output")
	addFilterFlags(f, &cfg.Filter, "measure", "pid cgroup")
	return cmd
}
