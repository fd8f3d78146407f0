package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/userfs"
	"github.com/bpfkit/bpfkit/pkg/xdp"
)

func newXDPCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "xdp",
		Short: "Filter packets at the NIC: CIDR, protocol and port rules, redirect, live counters",
		Long: `Filter packets at the NIC with XDP. Rules match source and destination CIDRs,
protocol and port ranges, all fields of a rule together; the most specific
rule wins (see docs/xdp.md). State is pinned under ` + xdp.PinRoot + `,
so load, rule, stats and unload are separate invocations.`,
		Example: `  bpfkit xdp load veth0
  bpfkit xdp rule add veth0 --src 198.18.0.0/15 --proto udp --dport 53 --action drop
  bpfkit xdp stats veth0 --watch
  bpfkit xdp unload veth0`,
	}
	cmd.AddCommand(newXDPLoadCmd(g), newXDPRuleCmd(g), newXDPStatsCmd(g), newXDPStatusCmd(g),
		newXDPUnloadCmd(g), newXDPRedirectCmd(g), newXDPRunCmd(g))
	return cmd
}

// attachFlags are the flags of every command that attaches a filter.
type attachFlags struct {
	mode   string
	policy string
	force  bool
}

func (a *attachFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.mode, "mode", "auto", "attach mode: auto (native, else generic), native or generic")
	cmd.Flags().StringVar(&a.policy, "policy", "deny", "what no rule matches: deny (rules drop, the rest passes) or allow (rules pass, the rest is dropped)")
	cmd.Flags().BoolVar(&a.force, "force", false, "attach even if it could cut off your SSH session or the default route")
}

// options checks the flags and the safety of the rule set on iface.
func (a *attachFlags) options(iface string, rules []xdp.Rule, g *globalFlags) (xdp.Options, error) {
	mode, err := xdp.ParseMode(a.mode)
	if err != nil {
		return xdp.Options{}, err
	}
	policy, err := xdp.ParsePolicy(a.policy)
	if err != nil {
		return xdp.Options{}, err
	}
	if err := checkSafety(iface, policy, rules, 0, true, a.force); err != nil {
		return xdp.Options{}, err
	}
	return xdp.Options{Mode: mode, Policy: policy, Rules: rules, Debug: g.debug}, nil
}

// checkSafety refuses what could cut the operator off, unless forced
// (see xdp.Hazards).
func checkSafety(iface string, policy xdp.Policy, rules []xdp.Rule, firstNew int, loading, force bool) error {
	hazards, err := xdp.Hazards(iface, policy, rules, firstNew, loading)
	if err != nil {
		return err
	}
	if len(hazards) == 0 {
		return nil
	}
	if force {
		for _, h := range hazards {
			fmt.Fprintf(os.Stderr, "bpfkit: warning (--force): %s\n", h)
		}
		return nil
	}
	return fmt.Errorf("%s: add --force if that is what you want", strings.Join(hazards, "; "))
}

// maxRuleFile bounds a rule file: far more than the most rules that fit
// (xdp.MaxRules lines), comments included.
const maxRuleFile = 256 << 20

// readRules reads a rule file with the user's own rights.
func readRules(file string) ([]xdp.Rule, error) {
	if file == "" {
		return nil, nil
	}
	b, err := userfs.ReadFile(file, maxRuleFile)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	rules, err := xdp.ParseRules(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return rules, nil
}

func newXDPLoadCmd(g *globalFlags) *cobra.Command {
	var (
		a     attachFlags
		rules string
	)
	cmd := &cobra.Command{
		Use:   "load IFACE",
		Short: "Attach the filter to an interface and pin it (it stays after bpfkit exits)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, err := readRules(rules)
			if err != nil {
				return err
			}
			opts, err := a.options(args[0], rs, g)
			if err != nil {
				return err
			}
			opts.Pin = true
			f, err := xdp.Attach(args[0], opts)
			if err != nil {
				return err
			}
			defer f.Close()
			fmt.Printf("attached to %s in %s mode, policy %s, %d rules\n", f.Iface, f.Mode, f.Policy, len(rs))
			return nil
		},
	}
	a.register(cmd)
	cmd.Flags().StringVar(&rules, "rules", "", "start with the rules of this file (one rule per line, as for rule add)")
	return cmd
}

func newXDPUnloadCmd(_ *globalFlags) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "unload IFACE | --all",
		Short: "Detach the filter and remove its pinned state",
		Args: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) || len(args) > 1 {
				return fmt.Errorf("give one interface, or --all")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if all {
				gone, err := xdp.UnloadAll()
				for _, st := range gone {
					fmt.Printf("unloaded %s (netns %d)\n", st.Iface, st.Netns)
				}
				return err
			}
			f, err := xdp.Open(args[0])
			if err != nil {
				return err
			}
			if err := f.Unload(); err != nil {
				return err
			}
			fmt.Printf("unloaded %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every filter bpfkit pinned, in every network namespace")
	return cmd
}

func newXDPStatusCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show every interface bpfkit filters: mode, policy, rule count",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			all, err := xdp.List()
			if err != nil {
				return err
			}
			if len(all) == 0 {
				fmt.Println("no bpfkit XDP filter is loaded")
				return nil
			}
			fmt.Printf("%-16s %-12s %-8s %-6s %6s %s\n", "IFACE", "NETNS", "MODE", "POLICY", "RULES", "ATTACHED")
			for _, st := range all {
				fmt.Printf("%-16s %-12d %-8s %-6s %6d %v\n", st.Iface, st.Netns, st.Mode, st.Policy, st.Rules, st.Attached)
			}
			return nil
		},
	}
}

func newXDPRedirectCmd(g *globalFlags) *cobra.Command {
	var (
		a        attachFlags
		from, to string
	)
	cmd := &cobra.Command{
		Use:   "redirect --from IFACE --to IFACE",
		Short: "Send everything that arrives on one interface out of another (pinned; counters with stats)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return fmt.Errorf("redirect needs --from IFACE and --to IFACE")
			}
			rule := xdp.Rule{Action: xdp.Action{Kind: xdp.Redirect, Iface: to}}
			opts, err := a.options(from, []xdp.Rule{rule}, g)
			if err != nil {
				return err
			}
			opts.Pin = true
			f, err := xdp.Attach(from, opts)
			if err != nil {
				return err
			}
			defer f.Close()
			fmt.Printf("redirecting %s to %s in %s mode (`bpfkit xdp stats %s` counts, `bpfkit xdp unload %s` stops)\n", from, to, f.Mode, from, from)
			return nil
		},
	}
	a.register(cmd)
	cmd.Flags().Lookup("policy").Hidden = true
	cmd.Flags().StringVar(&from, "from", "", "the interface packets arrive on")
	cmd.Flags().StringVar(&to, "to", "", "the interface they leave from")
	return cmd
}
