package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/pkg/trace/output"
	"github.com/bpfkit/bpfkit/pkg/xdp"
)

func newXDPRuleCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rule",
		Short: "Add, delete, list or replace the rules of a loaded filter",
	}
	cmd.AddCommand(newXDPRuleAddCmd(g), newXDPRuleDelCmd(g), newXDPRuleListCmd(g), newXDPRuleLoadCmd(g))
	return cmd
}

func newXDPRuleAddCmd(_ *globalFlags) *cobra.Command {
	var (
		src, dst, proto, sport, dport, action string
		priority                              int32
		force                                 bool
	)
	cmd := &cobra.Command{
		Use:   "add IFACE [--src CIDR] [--dst CIDR] [--proto P] [--sport P[-Q]] [--dport P[-Q]] --action A",
		Short: "Add a rule: every field given must match",
		Example: `  bpfkit xdp rule add veth0 --src 198.18.0.0/15 --proto udp --dport 53 --action drop
  bpfkit xdp rule add veth0 --dst 2001:db8::/32 --action redirect:veth1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			line := ""
			for _, kv := range [][2]string{{"src", src}, {"dst", dst}, {"proto", proto}, {"sport", sport}, {"dport", dport}, {"action", action}} {
				if kv[1] != "" {
					line += fmt.Sprintf(" --%s %s", kv[0], kv[1])
				}
			}
			if action == "" {
				return fmt.Errorf("a rule needs --action drop|pass|redirect:IFACE")
			}
			r, err := xdp.ParseRule(line)
			if err != nil {
				return err
			}
			r.Priority = priority
			f, err := xdp.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			rules, err := f.Rules()
			if err != nil {
				return err
			}
			if err := checkSafety(args[0], f.Policy, append(rules, r), len(rules), false, force); err != nil {
				return err
			}
			r, err = f.AddRule(r)
			if err != nil {
				return err
			}
			fmt.Printf("rule %d: %s\n", r.ID, r.String())
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&src, "src", "", "source CIDR or address")
	fl.StringVar(&dst, "dst", "", "destination CIDR or address")
	fl.StringVar(&proto, "proto", "", "tcp, udp, icmp, icmpv6 or a protocol number")
	fl.StringVar(&sport, "sport", "", "source port or range P-Q (tcp and udp)")
	fl.StringVar(&dport, "dport", "", "destination port or range P-Q (tcp and udp)")
	fl.Int32Var(&priority, "priority", 0, "among equally specific rules, the lower priority wins")
	fl.StringVar(&action, "action", "", "drop, pass or redirect:IFACE")
	fl.BoolVar(&force, "force", false, "add it even if it could cut off your SSH session or the default route")
	return cmd
}

func newXDPRuleDelCmd(_ *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "del IFACE ID",
		Short: "Delete a rule by id (rule list shows them)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[1], 10, 32)
			if err != nil {
				return fmt.Errorf("rule id %q: use the number rule list shows", args[1])
			}
			f, err := xdp.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if err := f.DeleteRule(uint32(id)); err != nil {
				return err
			}
			fmt.Printf("deleted rule %d\n", id)
			return nil
		},
	}
}

func newXDPRuleLoadCmd(g *globalFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "load IFACE FILE",
		Short: "Replace the whole rule set with the rules of a file, atomically",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rules, err := readRules(args[1])
			if err != nil {
				return err
			}
			f, err := xdp.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if err := checkSafety(args[0], f.Policy, rules, 0, false, force); err != nil {
				return err
			}
			if err := f.ReplaceRules(rules); err != nil {
				return err
			}
			fmt.Printf("%s: %d rules\n", args[0], len(rules))
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "load them even if they could cut off your SSH session or the default route")
	return cmd
}

func newXDPRuleListCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list IFACE",
		Short: "List the rules (-o json for JSON lines)",
		Args:  cobra.ExactArgs(1),
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
			rules, err := f.Rules()
			if err != nil {
				return err
			}
			p := output.NewPrinter(os.Stdout, format, xdp.Fields(false, false))
			if err := p.Header(); err != nil {
				return err
			}
			for i := range rules {
				row := xdp.Row{Rule: &rules[i], Action: rules[i].Action.String()}
				if err := p.Print(&row); err != nil {
					return err
				}
			}
			return p.Flush()
		},
	}
}
