package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/oomkill"
)

func init() { addTool(&oomkill.Tool, newOomkillCmd) }

func newOomkillCmd(g *globalFlags) *cobra.Command {
	var (
		cfg        oomkill.Config
		run        runFlags
		timestamps bool
	)
	cmd := &cobra.Command{
		Use:   "oomkill",
		Short: oomkill.Tool.Summary,
		Long: `Reports each process the OOM killer kills: the victim (PID is the thread the
kernel's "Killed process" line names), the task whose allocation called the
OOM killer (TRIGGER), and CGROUP, the trigger's memory cgroup: the limit hit
is its own or an ancestor's (a global OOM: "/"). Paths are below the mount of
the memory controller's hierarchy, cgroup v1 or v2. The victim's figures
(total VM, anon, file and shmem RSS in kB) come from the kernel's
oom:mark_victim tracepoint where its record has them (5.10's has not: "-").`,
		Example: `  bpfkit oomkill
  bpfkit oomkill -o json      # with the trigger's tid, uid, oom_score_adj, page tables`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			cfg.Debug = g.debug
			t, err := oomkill.New(cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			warnDropped(t.Dropped())
			p := output.NewPrinter(os.Stdout, format, oomkill.Fields(timestamps))
			return stream(cmd.Context(), &run, p, func(ctx context.Context, opts loader.StreamOptions, emit func(*oomkill.Event) error) (loader.Stats, error) {
				return t.Run(ctx, opts, emit)
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&timestamps, "timestamp", "T", false, "show a time column")
	addRingSize(f, &cfg.RingSize, loader.DefaultRingSize)
	run.register(cmd)
	return cmd
}
