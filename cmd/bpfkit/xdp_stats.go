package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/xdp"
)

func newXDPStatsCmd(g *globalFlags) *cobra.Command {
	var (
		watch    bool
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "stats IFACE",
		Short: "Packets and bytes per rule and per default action; --watch adds rates each second",
		Args:  ifaceArgs(1, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			f, err := xdp.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if !watch {
				s, err := f.Stats()
				if err != nil {
					return err
				}
				return printStats(format, xdp.Rows(s, f.Policy, nil, 0), false)
			}
			return watchStats(cmd.Context(), f, format, interval)
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "refresh with packet and bit rates until Ctrl-C")
	interval = time.Second
	cmd.Flags().Var(flagval.Interval(&interval), "interval", "refresh interval of --watch")
	return cmd
}

func printStats(format output.Format, rows []xdp.Row, rates bool) error {
	p := output.NewPrinter(os.Stdout, format, xdp.Fields(true, rates))
	if err := p.Header(); err != nil {
		return err
	}
	for i := range rows {
		if err := p.Print(&rows[i]); err != nil {
			return err
		}
	}
	return p.Flush()
}

// watchStats prints the counters and rates every interval until ctx ends.
func watchStats(ctx context.Context, f *xdp.Filter, format output.Format, interval time.Duration) error {
	prev, err := f.Stats()
	if err != nil {
		return err
	}
	return intervalArgs{interval: interval}.every(ctx, func(now time.Time, elapsed time.Duration) error {
		if ctx.Err() != nil {
			return nil // Ctrl-C: rates of whole intervals only
		}
		s, err := f.Stats()
		if err != nil {
			return err
		}
		if format == output.Table {
			fmt.Printf("\n%s\n", now.Format("15:04:05"))
		}
		if err := printStats(format, xdp.Rows(s, f.Policy, &prev, elapsed), true); err != nil {
			return err
		}
		prev = s
		return nil
	})
}
