package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/loader"
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
		// Before any flag is acted on: a setuid or file-capability copy
		// could open the paths its users name with rights they lack.
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if err := loader.RefuseSetID(); err != nil {
				return err
			}
			_, err := g.format() // -o is checked once, for every command
			return err
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, cmd.CommandPath())
	})
	root.PersistentFlags().BoolVar(&g.debug, "debug", false, "show the full verifier log when a program is rejected")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	for _, t := range toolCommands {
		root.AddCommand(t.newCmd(g))
	}
	root.AddCommand(newCheckCmd(g), newServeCmd(g))
	return root
}
