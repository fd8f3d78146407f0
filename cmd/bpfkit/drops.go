package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/drops"
)

func init() { addTool(&drops.Tool, newDropsCmd) }

func newDropsCmd(g *globalFlags) *cobra.Command {
	var (
		cfg        drops.Config
		run        runFlags
		timestamps bool
		rows       int
	)
	cmd := &cobra.Command{
		Use:   "drops [--netns NETNS] [--summary [interval] [count]]",
		Short: drops.Tool.Summary,
		Long: `Report every packet the kernel frees as dropped (skb:kfree_skb; packets
freed after use are not drops), with the reason the kernel gives, named as
the running kernel's enum skb_drop_reason names it (NO_SOCKET,
NETFILTER_DROP, ...), the function that dropped it, the packet's protocol,
addresses and ports (when it has an IP header), interface and network
namespace inode (as in /proc/PID/ns/net). Kernels before 5.17 give no
reason: every drop is NOT_SPECIFIED there.

With --summary the kernel only counts drops per reason and function, shown
every interval (default: once, at Ctrl-C). --netns keeps either mode to one
network namespace, in the kernel: /proc/PID/ns/net, a name from ip netns,
or the namespace's inode (the netns column; stat -Lc %i /proc/PID/ns/net).`,
		Example: `  bpfkit drops                    # every drop
  bpfkit drops -o json --count 10
  bpfkit drops --summary 5        # counts every 5 s
  bpfkit drops --netns /proc/1234/ns/net   # one namespace's drops
  bpfkit drops --summary --netns blue     # ip netns blue's drops, counted`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			if len(args) > 0 && !cfg.Summary {
				return errors.New("an interval and a count go with --summary (bpfkit drops --summary 5)")
			}
			ia, err := parseIntervalArgs(args, 99999*time.Hour)
			if err != nil {
				return err
			}
			cfg.Debug = g.debug
			t, err := drops.New(cfg)
			if err != nil {
				return err
			}
			defer t.Close()
			warnDropped(t.Health().Dropped)
			if !t.HasReasons() {
				fmt.Fprintf(os.Stderr, "bpfkit: this kernel's skb:kfree_skb gives no drop reason (that came in 5.17): every drop is %s\n", drops.NotSpecified)
			}
			if !cfg.Summary {
				p := output.NewPrinter(os.Stdout, format, drops.Fields(timestamps))
				err := stream(cmd.Context(), &run, p, func(ctx context.Context, opts loader.StreamOptions, emit func(*drops.Event) error) (loader.Stats, error) {
					return t.Run(ctx, opts, emit)
				})
				reportHealth(t.Health())
				return err
			}
			if format == output.Table && len(args) == 0 {
				fmt.Fprintln(os.Stderr, "Counting drops... Hit Ctrl-C to end.")
			}
			p := output.NewPrinter(os.Stdout, format, drops.SummaryFields())
			var health healthReport
			return ia.every(cmd.Context(), func(now time.Time, elapsed time.Duration) error {
				counts, err := t.Delta()
				if err != nil {
					return err
				}
				if rows > 0 && len(counts) > rows {
					counts = counts[:rows]
				}
				out := make([]drops.Row, len(counts))
				for i, c := range counts {
					out[i] = drops.Row{Time: now, Interval: elapsed, Count: c}
				}
				return printSample(p, format == output.Table, out, &health, t.Health())
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&cfg.Summary, "summary", false, "count drops per reason and function in the kernel; print every [interval]")
	f.Var(flagval.Netns(&cfg.Netns), "netns", "only drops in this network namespace: /proc/PID/ns/net, a name from ip netns, or its inode")
	f.BoolVarP(&timestamps, "timestamp", "T", false, "show a time column")
	addRows(f, &rows, 0, "with --summary, show this many rows per interval")
	addRingSize(f, &cfg.RingSize, loader.DefaultRingSize)
	run.register(cmd)
	return cmd
}
