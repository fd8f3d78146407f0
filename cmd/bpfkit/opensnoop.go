package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/opensnoop"
)

func init() { addTool(&opensnoop.Tool, newOpensnoopCmd) }

func newOpensnoopCmd(g *globalFlags) *cobra.Command {
	var (
		cfg    opensnoop.Config
		fields opensnoop.FieldOptions
		run    runFlags
	)
	cmd := &cobra.Command{
		Use:   "opensnoop",
		Short: opensnoop.Tool.Summary,
		Example: `  bpfkit opensnoop                 # every open on the machine
  bpfkit opensnoop -p 1234 -F      # one process, absolute paths
  bpfkit opensnoop -x -n nginx     # failed opens of nginx
  bpfkit opensnoop -o json | jq .  # JSON lines`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			cfg.FullPath = fields.FullPath
			cfg.Debug = g.debug
			t, err := opensnoop.New(cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			warnDropped(t.Dropped())
			p := output.NewPrinter(os.Stdout, format, opensnoop.Fields(fields))
			err = stream(cmd.Context(), &run, p, func(ctx context.Context, opts loader.StreamOptions, emit func(*opensnoop.Event) error) (loader.Stats, error) {
				return t.Run(ctx, opts, emit)
			})
			reportHealth(t.Health())
			return err
		},
	}
	f := cmd.Flags()
	addFilterFlags(f, &cfg.Filter, "trace", "pid tid uid name cgroup")
	f.BoolVarP(&cfg.FailedOnly, "failed", "x", false, "show failed opens only")
	f.BoolVarP(&fields.FullPath, "full-path", "F", false, "show absolute paths, resolved in the kernel")
	f.BoolVarP(&fields.Timestamps, "timestamp", "T", false, "show a time column")
	addRingSize(f, &cfg.RingSize, loader.DefaultRingSize)
	run.register(cmd)
	return cmd
}
