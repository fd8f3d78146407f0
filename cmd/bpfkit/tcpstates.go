package main

import (
	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/pkg/trace/tcp"
)

func init() { addTool(&tcp.States, newTcpstatesCmd) }

func newTcpstatesCmd(g *globalFlags) *cobra.Command {
	var (
		cfg        tcp.Config
		run        runFlags
		timestamps bool
	)
	cmd := &cobra.Command{
		Use:   "tcpstates",
		Short: tcp.States.Summary,
		Long: `One line per TCP state change (IPv4 and IPv6), with the states named as ss(8)
names them (SYN-SENT, ESTAB, FIN-WAIT-1, TIME-WAIT...; a closed socket is
CLOSE) and the time spent in the old state. PID and COMM are the socket's
owner: the process that connected or accepted it; before an accepted
connection is accepted, the process listening on its port. See docs/tcp.md.`,
		Example: `  bpfkit tcpstates               # every state change
  bpfkit tcpstates -D 5432 -T    # connections to port 5432, with times
  bpfkit tcpstates -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := g.format(); err != nil {
				return err
			}
			cfg.Debug = g.debug
			t, err := tcp.NewStates(cfg)
			if err != nil {
				return err
			}
			return streamTCP(cmd, g, &run, t, tcp.StateFields(timestamps))
		},
	}
	addTCPFlags(cmd.Flags(), &cfg, &timestamps)
	run.register(cmd)
	return cmd
}
