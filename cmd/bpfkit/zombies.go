package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/zombies"
)

func init() { addTool(&zombies.Tool, newZombiesCmd) }

func newZombiesCmd(g *globalFlags) *cobra.Command {
	var (
		cfg        zombies.Config
		run        runFlags
		timestamps bool
	)
	cmd := &cobra.Command{
		Use:   "zombies",
		Short: zombies.Tool.Summary,
		Long: `First lists the zombies present now (AGE is since the process started: when
it exited is not known), then reports each process as its parent reaps it
with wait4(2) or waitid(2): how long it was a zombie, its exit status
(128+N when killed by signal N) and who reaped it. A process whose parent
ignores SIGCHLD is reaped at once, is never a zombie, and is not reported.`,
		Example: `  bpfkit zombies                  # every reap, with its zombie time
  bpfkit zombies --over 1s        # only those left unreaped over a second
  bpfkit zombies --ppid 1234 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			cfg.Debug = g.debug
			t, err := zombies.New(cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			warnDropped(t.Dropped())
			now, err := zombies.Now()
			if err != nil {
				return err
			}
			if format == output.Table {
				fmt.Fprintf(os.Stderr, "%d zombies now\n", len(now))
				for _, z := range now {
					fmt.Fprintf(os.Stderr, "  pid %d (%s), parent %d (%s), started %s ago\n", z.PID, z.Comm, z.PPID, z.ParentComm, z.Age.Round(time.Millisecond))
				}
			}
			p := output.NewPrinter(os.Stdout, format, zombies.Fields(timestamps))
			err = stream(cmd.Context(), &run, p, func(ctx context.Context, opts loader.StreamOptions, emit func(*zombies.Event) error) (loader.Stats, error) {
				return t.Run(ctx, opts, emit)
			})
			reportHealth(t.Health())
			return err
		},
	}
	f := cmd.Flags()
	addFilterFlags(f, &cfg.Filter, "report", "pid name cgroup")
	f.Var(flagval.PID(&cfg.PPID), "ppid", "report zombies reaped by this process only")
	f.Var(flagval.Duration(&cfg.Over), "over", "report zombies left unreaped longer than this only (e.g. 1s)")
	f.BoolVarP(&timestamps, "timestamp", "T", false, "show a time column")
	addRingSize(f, &cfg.RingSize, loader.DefaultRingSize)
	run.register(cmd)
	return cmd
}
