package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/trace/bio"
)

func init() { addTool(&bio.Biotop, newBiotopCmd) }

func newBiotopCmd(g *globalFlags) *cobra.Command {
	var (
		cfg     bio.Config
		sortBy  string
		rows    int
		noClear bool
	)
	cmd := &cobra.Command{
		Use:   "biotop [interval] [count]",
		Short: bio.Biotop.Summary,
		Long: `Counts block I/O requests per submitting process and disk in the kernel and
shows the top rows every interval (default 1s): requests read and written
(by the kernel's data direction), KiB, and their mean latency from issue to
completion (-Q: from their start). I/O the kernel submits (writeback,
journal, loop workers) shows as pid 0 with the kernel thread's name. JSON
rows (-o json) have exact read_bytes, write_bytes and avg_ns.`,
		Example: `  bpfkit biotop                    # top 20 every second
  bpfkit biotop -s avg -r 5 5      # slowest 5 every 5 s
  bpfkit biotop -C -d sda 1 30     # one disk, no clearing, 30 times
  bpfkit biotop -o json 10 1       # JSON lines for one 10s interval`,
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
			key, err := bio.ParseSortKey(sortBy)
			if err != nil {
				return err
			}
			cfg.Debug = g.debug
			t, err := bio.NewTop(cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			p := output.NewPrinter(os.Stdout, format, bio.TopFields())
			clear := format == output.Table && !noClear
			fmt.Fprintf(os.Stderr, "Tracing... Output every %s. Hit Ctrl-C to end.\n", ia.interval)
			var w warnBio
			defer w.summary()
			return ia.every(cmd.Context(), func(now time.Time, _ time.Duration) error {
				rs, err := t.Delta()
				if err != nil {
					return err
				}
				st, err := t.Stats()
				if err != nil {
					return err
				}
				w.check(st)
				if format == output.Table {
					if clear {
						os.Stdout.WriteString("\033[H\033[2J")
					}
					fmt.Fprintf(os.Stdout, "%s %s\n", now.Format("15:04:05"), loadavg())
					if err := p.Header(); err != nil {
						return err
					}
				}
				for _, r := range bio.SortRows(rs, key, rows) {
					if err := p.Print(&r); err != nil {
						return err
					}
				}
				if format == output.Table && !clear {
					if _, err := fmt.Fprintln(os.Stdout); err != nil {
						return err
					}
				}
				return p.Flush()
			})
		},
	}
	f := cmd.Flags()
	addBioFilterFlags(f, &cfg, "count")
	f.BoolVarP(&cfg.Queued, "queued", "Q", false, "latency from the request's start (time queued in the OS included)")
	f.StringVarP(&sortBy, "sort", "s", "all", "sort by "+strings.Join(bio.SortKeys(), ", ")+" (all: bytes, then requests)")
	addRows(f, &rows, 20, "show this many rows")
	f.BoolVarP(&noClear, "noclear", "C", false, "don't clear the screen between intervals")
	return cmd
}
