package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/tcp"
)

func init() { addTool(&tcp.Life, newTcplifeCmd) }

// portsValue is a list of TCP ports: comma-separated, repeatable.
type portsValue struct{ p *[]uint16 }

func (v portsValue) String() string {
	s := make([]string, len(*v.p))
	for i, p := range *v.p {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

func (v portsValue) Type() string { return "ports" }

func (v portsValue) Set(s string) error {
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("port %s: give ports from 1 to 65535, comma-separated", flagval.Quote(f))
		}
		if len(*v.p) == tcp.MaxPorts {
			return fmt.Errorf("more than %d ports: give at most %d", tcp.MaxPorts, tcp.MaxPorts)
		}
		*v.p = append(*v.p, uint16(n))
	}
	return nil
}

// addTCPFlags registers the filters the TCP tools share and -T.
func addTCPFlags(f *pflag.FlagSet, cfg *tcp.Config, timestamps *bool) {
	f.VarP(flagval.PID(&cfg.PID), "pid", "p", "only sockets this process owns")
	f.StringVar(&cfg.Cgroup, "cgroup", "", "only sockets owned by tasks in this cgroup v2 directory")
	f.VarP(portsValue{&cfg.LocalPorts}, "local-port", "L", fmt.Sprintf("only these local ports (comma-separated, at most %d)", tcp.MaxPorts))
	f.VarP(portsValue{&cfg.RemotePorts}, "remote-port", "D", fmt.Sprintf("only these remote ports (comma-separated, at most %d)", tcp.MaxPorts))
	f.BoolVarP(timestamps, "timestamp", "T", false, "show a time column")
	addRingSize(f, &cfg.RingSize, loader.DefaultRingSize)
}

// streamTCP prints a TCP tracer's events until the run ends.
func streamTCP(cmd *cobra.Command, g *globalFlags, run *runFlags, t *tcp.Tracer, fields []output.Field[tcp.Event]) error {
	defer t.Close()
	format, err := g.format()
	if err != nil {
		return err
	}
	warnDropped(t.Health().Dropped)
	p := output.NewPrinter(os.Stdout, format, fields)
	err = stream(cmd.Context(), run, p, func(ctx context.Context, opts loader.StreamOptions, emit func(*tcp.Event) error) (loader.Stats, error) {
		return t.Run(ctx, opts, emit)
	})
	reportHealth(t.Health())
	return err
}

func newTcplifeCmd(g *globalFlags) *cobra.Command {
	var (
		cfg        tcp.Config
		run        runFlags
		timestamps bool
	)
	cmd := &cobra.Command{
		Use:   "tcplife",
		Short: tcp.Life.Summary,
		Long: `One line per TCP connection (IPv4 and IPv6) as it closes: the process that
owns the socket, the addresses and ports, the payload bytes sent (acknowledged
by the peer) and received, and how long it lived (from the first state change
seen). On tracepoints only (sock:inet_sock_set_state), so it works where
kprobes do not.

PID and COMM are the socket's owner on both sides: the process that
connected, or for an accepted connection the process that accepted it (not
whichever task the kernel's softirq interrupted). See docs/tcp.md.`,
		Example: `  bpfkit tcplife                 # every connection that closes
  bpfkit tcplife -L 80,443       # only local ports 80 and 443
  bpfkit tcplife -p 1234 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := g.format(); err != nil {
				return err
			}
			cfg.Debug = g.debug
			t, err := tcp.NewLife(cfg)
			if err != nil {
				return err
			}
			return streamTCP(cmd, g, &run, t, tcp.LifeFields(timestamps))
		},
	}
	addTCPFlags(cmd.Flags(), &cfg, &timestamps)
	run.register(cmd)
	return cmd
}
