package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/pkg/xdp"
)

func newXDPRunCmd(g *globalFlags) *cobra.Command {
	var (
		a     attachFlags
		rules string
	)
	cmd := &cobra.Command{
		Use:   "run IFACE --rules FILE",
		Short: "Attach in the foreground: detached when bpfkit exits or is killed (nothing pinned)",
		Args:  ifaceArgs(1, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			rs, err := readRules(rules)
			if err != nil {
				return err
			}
			opts, err := a.options(rs, g)
			if err != nil {
				return err
			}
			f, err := xdp.Attach(args[0], opts)
			if err != nil {
				return err
			}
			defer f.Close()
			fmt.Fprintf(os.Stderr, "bpfkit: attached to %s in %s mode, policy %s, %d rules (pid %d); Ctrl-C detaches\n", f.Iface, f.Mode, f.Policy, len(rs), os.Getpid())
			<-cmd.Context().Done()
			s, err := f.Stats()
			if err != nil {
				return err
			}
			return printStats(format, xdp.Rows(s, f.Policy, nil, 0), false)
		},
	}
	a.register(cmd)
	cmd.Flags().StringVar(&rules, "rules", "", "the rule file (one rule per line, as for rule add)")
	return cmd
}
