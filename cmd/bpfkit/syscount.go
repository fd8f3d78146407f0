package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/trace/syscount"
)

func init() { addTool(&syscount.Tool, newSyscountCmd) }

func newSyscountCmd(g *globalFlags) *cobra.Command {
	var (
		cfg   syscount.Config
		errno string
		rows  int
		stamp bool
	)
	cmd := &cobra.Command{
		Use:   "syscount [interval] [count]",
		Short: syscount.Tool.Summary,
		Long: `Count syscalls in the kernel as they return (raw_syscalls:sys_exit): calls
and failures per syscall, with -L the time spent in them, with -P per
process. Names come from the running kernel's own syscall metadata. Without
an interval the counts are printed once, at Ctrl-C. exit and exit_group
never return and are not counted. JSON lines: syscall, count, errors,
total_ns (and pid, comm with -P).`,
		Example: `  bpfkit syscount                  # until Ctrl-C, top 10
  bpfkit syscount -P -L 5 3        # per process, with time, every 5 s, 3 times
  bpfkit syscount -p 1234 -x       # failed calls of one process
  bpfkit syscount -e ENOENT -o json 1`,
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
			if errno != "" {
				if cfg.Errno, err = syscount.ParseErrno(errno); err != nil {
					return err
				}
			}
			cfg.Debug = g.debug
			t, err := syscount.New(cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			warnDropped(t.Dropped())
			if format == output.Table && len(args) == 0 {
				fmt.Fprintln(os.Stderr, "Tracing syscalls... Hit Ctrl-C to end.")
			}
			p := output.NewPrinter(os.Stdout, format, syscount.Fields(syscount.FieldOptions{PerProcess: cfg.PerProcess, Latency: cfg.Latency}))
			var health healthReport
			defer func() { health.report(t.Health()) }()
			return ia.every(cmd.Context(), func(now time.Time, _ time.Duration) error {
				rs, err := t.Delta()
				if err != nil {
					return err
				}
				if rows > 0 && len(rs) > rows {
					rs = rs[:rows]
				}
				if format == output.Table {
					if stamp {
						fmt.Fprintf(os.Stdout, "[%s]\n", now.Format("15:04:05"))
					}
					if err := p.Header(); err != nil {
						return err
					}
				}
				for i := range rs {
					if err := p.Print(&rs[i]); err != nil {
						return err
					}
				}
				health.report(t.Health())
				return p.Flush()
			})
		},
	}
	f := cmd.Flags()
	addFilterFlags(f, &cfg.Filter, "count", "pid tid uid name cgroup")
	f.BoolVarP(&cfg.PerProcess, "process", "P", false, "count per process")
	f.BoolVarP(&cfg.Latency, "latency", "L", false, "measure the time spent in the calls")
	f.BoolVarP(&cfg.FailedOnly, "failures", "x", false, "count failed calls only")
	f.StringVarP(&errno, "errno", "e", "", "count calls that failed with this errno only (ENOENT or 2)")
	f.BoolVarP(&stamp, "timestamp", "T", false, "print the time with each output")
	addRows(f, &rows, 10, "show this many syscalls, most calls first")
	cfg.MapSize = syscount.DefaultMapSize
	f.Var(flagval.Int(&cfg.MapSize, 1, syscount.MaxMapSize, "entries"), "map-size", "(process, syscall) pairs counted")
	return cmd
}
