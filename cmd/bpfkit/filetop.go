package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/trace/filetop"
)

func init() { addTool(&filetop.Tool, newFiletopCmd) }

func newFiletopCmd(g *globalFlags) *cobra.Command {
	var (
		cfg     filetop.Config
		sortBy  string
		rows    int
		noClear bool
	)
	cmd := &cobra.Command{
		Use:   "filetop [interval] [count]",
		Short: filetop.Tool.Summary,
		Long: `Counts reads and writes per thread and file in the kernel, from the syscalls
tracepoints of read, write, pread64, pwrite64, readv, writev, preadv, pwritev,
preadv2 and pwritev2, and shows the top rows every interval (default 1s).

A call counts as one read or write when it returns >= 0; R_KB and W_KB are the
bytes it returned, in KiB (JSON has read_bytes and write_bytes exactly).
T is the file's type: R regular, S socket, P pipe, O other; only regular files
are counted unless -a. Deleted files are marked. Interval is in seconds or a
duration (500ms); when Ctrl-C ends it, the interval in progress is shown too.
With --per-process, JSON rows have no tid.`,
		Example: `  bpfkit filetop                  # top 20 files every second
  bpfkit filetop -p 1234 -s wbytes 5   # one process, by bytes written, every 5s
  bpfkit filetop -a -C -r 10 1 30      # sockets and pipes too, no clearing, 30 times
  bpfkit filetop -o json 10 1          # JSON lines for one 10s interval`,
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
			key, err := filetop.ParseSortKey(sortBy)
			if err != nil {
				return err
			}
			cfg.Debug = g.debug
			t, err := filetop.New(cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			warnDropped(t.Dropped())

			p := output.NewPrinter(os.Stdout, format, filetop.Fields(filetop.FieldOptions{PerProcess: cfg.PerProcess}))
			clear := format == output.Table && !noClear
			fmt.Fprintf(os.Stderr, "Tracing... Output every %s. Hit Ctrl-C to end.\n", ia.interval)
			var health healthReport
			intervals := 0
			err = ia.every(cmd.Context(), func(time.Time, time.Duration) error {
				s, err := t.Drain()
				if err != nil {
					return err
				}
				intervals++
				health.report(t.Health())
				if format == output.Table {
					if clear {
						os.Stdout.WriteString("\033[H\033[2J")
					}
					fmt.Fprintf(os.Stdout, "%s %s\n", s.Time.Format("15:04:05"), loadavg())
					if err := p.Header(); err != nil {
						return err
					}
				}
				for _, r := range filetop.Top(s.Rows, key, rows) {
					if err := p.Print(&r); err != nil {
						return err
					}
				}
				if err := p.Flush(); err != nil {
					return err
				}
				if format == output.Table && !clear {
					_, err := fmt.Fprintln(os.Stdout)
					return err
				}
				return nil
			})
			h := t.Health()
			health.report(h)
			fmt.Fprintf(os.Stderr, "bpfkit: %d intervals, %d calls not counted (map full)\n", intervals, h.Lost)
			return err
		},
	}
	f := cmd.Flags()
	addFilterFlags(f, &cfg.Filter, "trace", "pid tid uid name cgroup")
	f.BoolVarP(&cfg.All, "all", "a", false, "include sockets, pipes and other non-regular files")
	f.BoolVar(&cfg.PerProcess, "per-process", false, "one row per process and file (threads summed)")
	f.StringVarP(&sortBy, "sort", "s", "all", "sort by "+strings.Join(filetop.SortKeys(), ", ")+" (all: bytes, then calls)")
	addRows(f, &rows, 20, "show this many rows")
	f.BoolVarP(&noClear, "noclear", "C", false, "don't clear the screen between intervals")
	cfg.MapSize = filetop.DefaultMapSize
	f.Var(flagval.Int(&cfg.MapSize, 1, filetop.MaxMapSize, "entries"), "map-size", "(thread, file) pairs one interval can hold")
	return cmd
}

// loadavg returns the first three fields of /proc/loadavg, as top shows them.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return "loadavg: " + strings.Join(f[:3], " ")
}
