package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/internal/userfs"
	"github.com/bpfkit/bpfkit/pkg/xdp"
)

func init() { addTool(&xdp.Tool, newXDPCmd) }

func newXDPCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "xdp",
		Short: xdp.Tool.Summary,
		Long: `Filter packets at the NIC with XDP. Rules match source and destination CIDRs,
protocol and port ranges, all fields of a rule together; the most specific
rule wins (see docs/xdp.md). State is pinned under ` + xdp.PinRoot + `
(root's alone: the pinned commands need root), so load, rule, stats and
unload are separate invocations. run attaches in the foreground instead.`,
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

// options checks the flags; the safety of the rule set on the interface
// is judged by xdp.Attach, with guard.
func (a *attachFlags) options(rules []xdp.Rule, g *globalFlags) (xdp.Options, error) {
	mode, err := xdp.ParseMode(a.mode)
	if err != nil {
		return xdp.Options{}, err
	}
	policy, err := xdp.ParsePolicy(a.policy)
	if err != nil {
		return xdp.Options{}, err
	}
	return xdp.Options{Mode: mode, Policy: policy, Rules: rules, Debug: g.debug, Guard: guard(a.force)}, nil
}

// guard is the safety check of a change, with its warnings on stderr.
func guard(force bool) xdp.Guard {
	return xdp.Guard{Force: force, Warn: func(msg string) { fmt.Fprintf(os.Stderr, "bpfkit: %s\n", msg) }}
}

// ifaceArgs checks every positional interface argument of a command
// before it runs (xdp.ValidIface).
func ifaceArgs(n int, ifaces ...int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return err
		}
		for _, i := range ifaces {
			if err := xdp.ValidIface(args[i]); err != nil {
				return err
			}
		}
		return nil
	}
}

// report prints what a command did: text in a table, v as a JSON line
// under -o json.
func report(g *globalFlags, text string, v any) error {
	format, err := g.format()
	if err != nil {
		return err
	}
	if format == output.JSON {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Printf("%s\n", b)
		return err
	}
	_, err = fmt.Print(text)
	return err
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
		Args:  ifaceArgs(1, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := g.format(); err != nil {
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
			opts.Pin = true
			f, err := xdp.Attach(args[0], opts)
			if err != nil {
				return err
			}
			defer f.Close()
			return report(g, fmt.Sprintf("attached to %s in %s mode, policy %s, %d rules\n", f.Iface, f.Mode, f.Policy, len(rs)),
				attached{f.Iface, string(f.Mode), f.Policy.String(), len(rs)})
		},
	}
	a.register(cmd)
	cmd.Flags().StringVar(&rules, "rules", "", "start with the rules of this file (one rule per line, as for rule add)")
	return cmd
}

// attached is what load, redirect and run report under -o json.
type attached struct {
	Iface  string `json:"attached"`
	Mode   string `json:"mode"`
	Policy string `json:"policy"`
	Rules  int    `json:"rules"`
}

func newXDPUnloadCmd(g *globalFlags) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "unload IFACE | --all",
		Short: "Detach the filter and remove its pinned state (stale state too)",
		Args: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) == 1) || len(args) > 1 {
				return fmt.Errorf("give one interface, or --all")
			}
			if len(args) == 1 {
				return xdp.ValidIface(args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := g.format(); err != nil {
				return err
			}
			type unloaded struct {
				Iface string `json:"unloaded"`
				Netns uint64 `json:"netns,omitempty"`
				State string `json:"state,omitempty"`
			}
			if all {
				gone, err := xdp.UnloadAll()
				for _, st := range gone {
					if rerr := report(g, fmt.Sprintf("unloaded %s (netns %d)\n", st.Iface, st.Netns), unloaded{st.Iface, st.Netns, st.State}); rerr != nil {
						return rerr
					}
				}
				return err
			}
			stale, err := xdp.UnloadIface(args[0])
			if err != nil {
				return err
			}
			if stale != nil {
				return report(g, fmt.Sprintf("removed the stale state of %s\n", args[0]), unloaded{Iface: args[0], State: "stale"})
			}
			return report(g, fmt.Sprintf("unloaded %s\n", args[0]), unloaded{Iface: args[0], State: "pinned"})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "every filter bpfkit pinned, in every network namespace")
	return cmd
}

func newXDPStatusCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show every interface bpfkit filters: mode, policy, rules, and whether the state is true (-o json)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			all, err := xdp.List()
			if err != nil {
				return err
			}
			if format == output.JSON {
				for _, st := range all {
					if err := report(g, "", st); err != nil {
						return err
					}
				}
				return nil
			}
			if len(all) == 0 {
				fmt.Println("no bpfkit XDP filter is loaded")
				return nil
			}
			fmt.Printf("%-16s %-12s %-8s %-6s %6s %-8s %s\n", "IFACE", "NETNS", "MODE", "POLICY", "RULES", "ATTACHED", "STATE")
			for _, st := range all {
				state := st.State
				if st.PID != 0 {
					state += fmt.Sprintf(" (bpfkit xdp run, pid %d)", st.PID)
				}
				fmt.Printf("%-16s %-12d %-8s %-6s %6d %-8v %s\n", st.Iface, st.Netns, orDash(string(st.Mode)), orDash(st.Policy), st.Rules, st.Attached, state)
			}
			return nil
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
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
			for _, iface := range []string{from, to} {
				if err := xdp.ValidIface(iface); err != nil {
					return err
				}
			}
			if _, err := g.format(); err != nil {
				return err
			}
			if from == to && !a.force {
				return fmt.Errorf("--from and --to are both %s: every frame would go back out where it came in (a hairpin); add --force if that is what you want", from)
			}
			rule := xdp.Rule{Action: xdp.Action{Kind: xdp.Redirect, Iface: to}}
			opts, err := a.options([]xdp.Rule{rule}, g)
			if err != nil {
				return err
			}
			opts.Pin = true
			f, err := xdp.Attach(from, opts)
			if err != nil {
				return err
			}
			defer f.Close()
			type redirecting struct {
				From string `json:"redirecting"`
				To   string `json:"to"`
				Mode string `json:"mode"`
			}
			return report(g, fmt.Sprintf("redirecting %s to %s in %s mode (`bpfkit xdp stats %s` counts, `bpfkit xdp unload %s` stops)\n", from, to, f.Mode, from, from),
				redirecting{from, to, string(f.Mode)})
		},
	}
	a.register(cmd)
	cmd.Flags().Lookup("policy").Hidden = true
	cmd.Flags().StringVar(&from, "from", "", "the interface packets arrive on")
	cmd.Flags().StringVar(&to, "to", "", "the interface they leave from")
	return cmd
}
