package main

import (
	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/pkg/trace/output"
)

// globalFlags are the flags every command shares.
type globalFlags struct {
	debug  bool
	output string
}

func (g *globalFlags) format() (output.Format, error) { return output.ParseFormat(g.output) }

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "bpfkit",
		Short:         "eBPF tracers and XDP filters for people who run Linux machines",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVar(&g.debug, "debug", false, "show the full verifier log when a program is rejected")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.AddCommand(
		newOpensnoopCmd(g),
		newExecsnoopCmd(g),
		newExitsnoopCmd(g),
		newCheckCmd(g),
	)
	return root
}
