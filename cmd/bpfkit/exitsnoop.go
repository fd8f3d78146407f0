package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/execsnoop"
)

func init() { addTool(&execsnoop.ExitTool, newExitsnoopCmd) }

func newExitsnoopCmd(g *globalFlags) *cobra.Command {
	var (
		cfg    execsnoop.ExitConfig
		fields execsnoop.ExitFieldOptions
		run    runFlags
	)
	cmd := &cobra.Command{
		Use:   "exitsnoop",
		Short: execsnoop.ExitTool.Summary,
		Example: `  bpfkit exitsnoop                 # every process exit on the machine
  bpfkit exitsnoop -x              # non-zero statuses and deaths by signal only
  bpfkit exitsnoop -p 1234 --threads  # each thread of process 1234
  bpfkit exitsnoop -o json | jq .  # JSON lines`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			cfg.Debug = g.debug
			t, err := execsnoop.NewExit(cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			warnDropped(t.Dropped())
			p := output.NewPrinter(os.Stdout, format, execsnoop.ExitFields(fields))
			err = stream(cmd.Context(), &run, p, func(ctx context.Context, opts loader.StreamOptions, emit func(*execsnoop.ExitEvent) error) (loader.Stats, error) {
				return t.Run(ctx, opts, emit)
			})
			reportHealth(t.Health())
			return err
		},
	}
	f := cmd.Flags()
	addFilterFlags(f, &cfg.Filter, "trace", "pid cgroup")
	f.Var(flagval.PID(&cfg.PPID), "ppid", "trace children of this process only")
	f.BoolVarP(&cfg.FailedOnly, "failed", "x", false, "show non-zero exits and deaths by signal only")
	f.BoolVar(&cfg.Threads, "threads", false, "show every thread's exit, not only each process's")
	addArgsLimit(f, &cfg.ArgsLimit, "bytes of argv remembered per exec")
	f.BoolVarP(&fields.Timestamps, "timestamp", "T", false, "show a time column")
	addRingSize(f, &cfg.RingSize, execsnoop.DefaultRingSize)
	run.register(cmd)
	return cmd
}
