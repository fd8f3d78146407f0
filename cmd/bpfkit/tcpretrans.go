package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/trace/tcp"
)

func init() { addTool(&tcp.Retrans, newTcpretransCmd) }

func newTcpretransCmd(g *globalFlags) *cobra.Command {
	var (
		cfg        tcp.Config
		run        runFlags
		timestamps bool
		count      bool
	)
	cmd := &cobra.Command{
		Use:   "tcpretrans",
		Short: tcp.Retrans.Summary,
		Long: `One line per retransmission (kind retrans) and per tail loss probe that
retransmits the last segment (kind loss_probe), from the tracepoint
tcp:tcp_retransmit_skb: one line per retransmitted buffer, which TcpRetransSegs
counts once per segment it holds (several when TSO/GSO merged them). PID is
the socket's owner, not the task a softirq interrupted. With -c/--count, sums
per connection in the kernel and prints them at the end (Ctrl-C or -d).
See docs/tcp.md.`,
		Example: `  bpfkit tcpretrans              # every retransmission
  bpfkit tcpretrans -c -d 10s    # count per connection for 10 seconds
  bpfkit tcpretrans -D 443 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			cfg.Debug = g.debug
			t, err := tcp.NewRetrans(cfg, count)
			if err != nil {
				return err
			}
			if !count {
				return streamTCP(cmd, g, &run, t, tcp.RetransFields(timestamps))
			}
			defer t.Close()
			warnDropped(t.Health().Dropped)
			ctx := cmd.Context()
			if run.duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, run.duration)
				defer cancel()
			}
			fmt.Fprintln(os.Stderr, "bpfkit: counting retransmissions per connection; Ctrl-C to print")
			<-ctx.Done()
			counts, err := t.Counts()
			if err != nil {
				return err
			}
			slices.SortFunc(counts, func(a, b tcp.Count) int {
				return cmp.Compare(b.Retrans+b.LossProbes, a.Retrans+a.LossProbes)
			})
			p := output.NewPrinter(os.Stdout, format, tcp.CountFields())
			if err := p.Header(); err != nil {
				return err
			}
			for i := range counts {
				if err := p.Print(&counts[i]); err != nil {
					return err
				}
			}
			reportHealth(t.Health())
			return p.Flush()
		},
	}
	f := cmd.Flags()
	addTCPFlags(f, &cfg, &timestamps)
	f.BoolVarP(&count, "count", "c", false, "count retransmissions per connection, print at the end")
	f.VarP(flagval.Duration(&run.duration), "duration", "d", "stop after this long (e.g. 10s, 5m; 0: until Ctrl-C)")
	return cmd
}
