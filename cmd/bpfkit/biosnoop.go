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
	"github.com/bpfkit/bpfkit/pkg/trace/bio"
)

func init() { addTool(&bio.Biosnoop, newBiosnoopCmd) }

func newBiosnoopCmd(g *globalFlags) *cobra.Command {
	var (
		cfg   bio.Config
		run   runFlags
		minUS int
	)
	cmd := &cobra.Command{
		Use:   "biosnoop",
		Short: bio.Biosnoop.Summary,
		Long: `One line per block I/O request, at its completion, with the task that
submitted it (pid 0 and the kernel thread's name for I/O the kernel submits:
writeback, journal, loop workers), the disk or partition as lsblk names it,
the request type as blktrace writes it (R read, W write, S sync, F flush or
FUA, M metadata, A readahead, D discard), the first sector (from the start of
the disk), the size, and the time from issue to completion (LAT); -Q shows the
time queued in the OS before the issue too. JSON lines (-o json) have the keys
time, pid, comm, disk, rwbs, sector, bytes, queue_ns, service_ns and cgroup.`,
		Example: `  bpfkit biosnoop                  # every request
  bpfkit biosnoop -d sda -Q        # one disk, with queue time
  bpfkit biosnoop -p 1234          # one process's requests
  bpfkit biosnoop --min-us 10000   # requests slower than 10 ms
  bpfkit biosnoop -o json | jq .   # JSON lines`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			cfg.MinLatency = time.Duration(minUS) * time.Microsecond
			cfg.Debug = g.debug
			t, err := bio.NewSnoop(cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			fmt.Fprintln(os.Stderr, "Tracing block device I/O... Hit Ctrl-C to end.")
			p := output.NewPrinter(os.Stdout, format, bio.EventFields(cfg.Queued))
			err = stream(cmd.Context(), &run, p, func(ctx context.Context, opts loader.StreamOptions, emit func(*bio.Event) error) (loader.Stats, error) {
				return t.Run(ctx, opts, emit)
			})
			if st, serr := t.Stats(); serr == nil {
				w := warnBio{last: st}
				w.summary()
			}
			return err
		},
	}
	f := cmd.Flags()
	addBioFilterFlags(f, &cfg, "trace")
	f.BoolVarP(&cfg.Queued, "queued", "Q", false, "show the time queued in the OS (QUE) and count it in --min-us")
	f.Var(flagval.Int(&minUS, 0, 1<<31-1, "microseconds"), "min-us", "show requests that took at least this many µs only")
	addRingSize(f, &cfg.RingSize, loader.DefaultRingSize)
	// -d is the disk here: --duration has no short form.
	f.Var(flagval.Duration(&run.duration), "duration", "stop after this long (e.g. 10s, 5m; 0: until Ctrl-C)")
	f.Uint64Var(&run.count, "count", 0, "stop after this many events")
	return cmd
}
