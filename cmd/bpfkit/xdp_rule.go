package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/output"
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

// ruleFields collects the fields of `rule add` in the order given, each
// flag once per use, so the rule parser sees empty and repeated values
// (xdp.RuleFromFields refuses both).
type ruleFields struct{ list []xdp.Field }

type ruleField struct {
	key    string
	fields *ruleFields
}

func (f ruleField) String() string { return "" }
func (f ruleField) Type() string   { return "string" }
func (f ruleField) Set(v string) error {
	f.fields.list = append(f.fields.list, xdp.Field{Key: f.key, Value: v})
	return nil
}

func newXDPRuleAddCmd(g *globalFlags) *cobra.Command {
	var (
		fields ruleFields
		force  bool
	)
	cmd := &cobra.Command{
		Use:   "add IFACE [--src CIDR] [--dst CIDR] [--proto P] [--sport P[-Q]] [--dport P[-Q]] [--priority N] --action A",
		Short: "Add a rule: every field given must match",
		Example: `  bpfkit xdp rule add veth0 --src 198.18.0.0/15 --proto udp --dport 53 --action drop
  bpfkit xdp rule add veth0 --dst 2001:db8::/32 --action redirect:veth1`,
		Args: ifaceArgs(1, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := g.format(); err != nil {
				return err
			}
			r, err := xdp.RuleFromFields(fields.list)
			if err != nil {
				return err
			}
			f, err := xdp.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			r, err = f.AddRule(r, guard(force))
			if err != nil {
				return err
			}
			format, _ := g.format()
			if format == output.JSON {
				return printRules(format, []xdp.Rule{r}) // the line rule list prints for it
			}
			_, err = fmt.Printf("rule %d: %s\n", r.ID, r.String())
			return err
		},
	}
	fl := cmd.Flags()
	for _, f := range []struct{ key, usage string }{
		{"src", "source CIDR or address"},
		{"dst", "destination CIDR or address"},
		{"proto", "tcp, udp, icmp, icmpv6 or a protocol number"},
		{"sport", "source port or range P-Q (tcp and udp)"},
		{"dport", "destination port or range P-Q (tcp and udp)"},
		{"priority", "among equally specific rules, the lower priority wins (default 0)"},
		{"action", "drop, pass or redirect:IFACE"},
	} {
		fl.Var(ruleField{f.key, &fields}, f.key, f.usage)
	}
	fl.BoolVar(&force, "force", false, "add it even if it could cut off your SSH session or the default route")
	return cmd
}

func newXDPRuleDelCmd(g *globalFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "del IFACE ID",
		Short: "Delete a rule by id (rule list shows them)",
		Args:  ifaceArgs(2, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := g.format(); err != nil {
				return err
			}
			id, err := strconv.ParseUint(args[1], 10, 32)
			if err != nil {
				return fmt.Errorf("rule id %s: use the number rule list shows", xdp.Quote(args[1]))
			}
			f, err := xdp.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if err := f.DeleteRule(uint32(id), guard(force)); err != nil {
				return err
			}
			return report(g, fmt.Sprintf("deleted rule %d\n", id), struct {
				ID uint64 `json:"deleted"`
			}{id})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete it even if that could cut off your SSH session or the default route")
	return cmd
}

func newXDPRuleLoadCmd(g *globalFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "load IFACE FILE",
		Short: "Replace the whole rule set with the rules of a file, atomically",
		Args:  ifaceArgs(2, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := g.format(); err != nil {
				return err
			}
			rules, err := readRules(args[1])
			if err != nil {
				return err
			}
			f, err := xdp.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if err := f.ReplaceRules(rules, guard(force)); err != nil {
				return err
			}
			return report(g, fmt.Sprintf("%s: %d rules\n", args[0], len(rules)), struct {
				Iface string `json:"iface"`
				Rules int    `json:"rules"`
			}{args[0], len(rules)})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "load them even if they could cut off your SSH session or the default route")
	return cmd
}

func newXDPRuleListCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list IFACE",
		Short: "List the rules (-o json for JSON lines)",
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
			rules, err := f.Rules()
			if err != nil {
				return err
			}
			return printRules(format, rules)
		},
	}
}

// printRules prints rules as rule list does.
func printRules(format output.Format, rules []xdp.Rule) error {
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
}
