package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/trace/netrx"
)

func init() { addTool(&netrx.Tool, newNetrxCmd) }

func newNetrxCmd(g *globalFlags) *cobra.Command {
	var (
		cfg  netrx.Config
		rows int
	)
	cmd := &cobra.Command{
		Use:   "netrx [interval] [count]",
		Short: netrx.Tool.Summary,
		Long: `Count in the kernel, per interface (and its network namespace), RX queue and
CPU, the packets the stack received (net:netif_receive_skb, on the CPU
that RPS/RFS chose: with RPS that is not the CPU of the interrupt) and
their bytes, and the NAPI polls (napi:napi_poll), with FULL the polls that
used their whole budget: the device had more packets than one poll takes.
Polls of a CPU's backlog (where RPS, netif_rx and veth queue packets) show
as "backlog". QUEUE is "-" where the driver recorded no RX queue. Every
interval (default 1s) the rows that moved are printed.`,
		Example: `  bpfkit netrx                    # every second
  bpfkit netrx 5 3
  bpfkit netrx -o json 1`,
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
			cfg.Debug = g.debug
			t, err := netrx.New(cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			warnDropped(t.Health().Dropped)
			p := output.NewPrinter(os.Stdout, format, netrx.Fields())
			var health healthReport
			return ia.every(cmd.Context(), func(now time.Time, elapsed time.Duration) error {
				counts, err := t.Delta()
				if err != nil {
					return err
				}
				if rows > 0 && len(counts) > rows {
					counts = counts[:rows]
				}
				out := make([]netrx.Row, len(counts))
				for i, c := range counts {
					out[i] = netrx.Row{Time: now, Interval: elapsed, Count: c}
				}
				return printSample(p, format == output.Table, out, &health, t.Health())
			})
		},
	}
	addRows(cmd.Flags(), &rows, 0, "show this many rows per interval")
	return cmd
}
