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

func init() { addTool(&execsnoop.ExecTool, newExecsnoopCmd) }

func newExecsnoopCmd(g *globalFlags) *cobra.Command {
	var (
		cfg    execsnoop.Config
		fields execsnoop.FieldOptions
		run    runFlags
	)
	cmd := &cobra.Command{
		Use:   "execsnoop",
		Short: execsnoop.ExecTool.Summary,
		Example: `  bpfkit execsnoop                   # every exec on the machine
  bpfkit execsnoop -x                # failed execs only, with -errno
  bpfkit execsnoop -p 1234 --cwd     # children of 1234, with their working directory
  bpfkit execsnoop -l cron -o json   # JSON lines of execs whose arguments mention cron`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			cfg.Cwd = fields.Cwd
			cfg.Debug = g.debug
			t, err := execsnoop.New(cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			warnDropped(t.Dropped())
			p := output.NewPrinter(os.Stdout, format, execsnoop.Fields(fields))
			err = stream(cmd.Context(), &run, p, func(ctx context.Context, opts loader.StreamOptions, emit func(*execsnoop.Event) error) (loader.Stats, error) {
				return t.Run(ctx, opts, emit)
			})
			reportHealth(t.Health())
			return err
		},
	}
	f := cmd.Flags()
	f.VarP(flagval.PID(&cfg.PPID), "ppid", "p", "trace children of this process only")
	addFilterFlags(f, &cfg.Filter, "trace", "uid cgroup")
	f.StringVarP(&cfg.Filter.Comm, "name", "n", "", "trace execs whose new name (comm) is this only")
	f.BoolVarP(&cfg.FailedOnly, "failed", "x", false, "show failed execs only")
	f.StringVarP(&cfg.Line, "line", "l", "", "show execs whose argument line contains this only")
	addArgsLimit(f, &cfg.ArgsLimit, "bytes of argv per exec; a longer argv is marked truncated")
	f.BoolVar(&fields.Cwd, "cwd", false, "show the working directory")
	f.BoolVarP(&fields.Quote, "quote", "q", false, "quote each argument")
	f.BoolVarP(&fields.Timestamps, "timestamp", "T", false, "show a time column")
	addRingSize(f, &cfg.RingSize, execsnoop.DefaultRingSize)
	run.register(cmd)
	return cmd
}
