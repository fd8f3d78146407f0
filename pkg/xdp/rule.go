package xdp

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Action is what a rule does with the packets it matches.
type Action struct {
	Kind  ActionKind
	Iface string // redirect target
}

// ActionKind is drop, pass or redirect.
type ActionKind uint32

const (
	Pass     ActionKind = 0
	Drop     ActionKind = 1
	Redirect ActionKind = 2
)

func (a Action) String() string {
	switch a.Kind {
	case Drop:
		return "drop"
	case Redirect:
		return "redirect:" + a.Iface
	}
	return "pass"
}

// ParseAction accepts drop, pass or redirect:IFACE.
func ParseAction(s string) (Action, error) {
	switch {
	case s == "drop":
		return Action{Kind: Drop}, nil
	case s == "pass":
		return Action{Kind: Pass}, nil
	case strings.HasPrefix(s, "redirect:") && len(s) > len("redirect:"):
		return Action{Kind: Redirect, Iface: s[len("redirect:"):]}, nil
	}
	return Action{}, fmt.Errorf("action %q: use drop, pass or redirect:IFACE", s)
}

// PortRange is an inclusive range of ports; the zero value is any port.
type PortRange struct{ Lo, Hi uint16 }

// Any reports whether the range is unset.
func (r PortRange) Any() bool { return r.Lo == 0 && r.Hi == 0 }

func (r PortRange) String() string {
	switch {
	case r.Any():
		return "any"
	case r.Lo == r.Hi:
		return strconv.Itoa(int(r.Lo))
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

func (r PortRange) size() uint64 {
	if r.Any() {
		return 65536
	}
	return uint64(r.Hi-r.Lo) + 1
}

func (r PortRange) contains(lo, hi uint16) bool { return r.Any() || (r.Lo <= lo && hi <= r.Hi) }

// ParsePortRange accepts P or P-Q with 0 < P <= Q <= 65535.
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.ParseUint(lo, 10, 32)
	h, err2 := strconv.ParseUint(hi, 10, 32)
	if err1 != nil || err2 != nil {
		return PortRange{}, fmt.Errorf("port %q: use a number P or a range P-Q", s)
	}
	if l < 1 || h > 65535 || l > h {
		return PortRange{}, fmt.Errorf("port %q out of range: ports go from 1 to 65535, low to high", s)
	}
	return PortRange{uint16(l), uint16(h)}, nil
}

// Protocol numbers rules name.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

var protoNames = map[string]uint8{"icmp": ProtoICMP, "tcp": ProtoTCP, "udp": ProtoUDP, "icmpv6": ProtoICMPv6}

// ParseProto accepts tcp, udp, icmp, icmpv6 or a number from 1 to 255.
func ParseProto(s string) (uint8, error) {
	if p, ok := protoNames[strings.ToLower(s)]; ok {
		return p, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("protocol %q: use tcp, udp, icmp, icmpv6 or a number from 1 to 255", s)
	}
	return uint8(n), nil
}

// ProtoName names a protocol number ("" for any).
func ProtoName(p uint8) string {
	for name, n := range protoNames {
		if n == p {
			return name
		}
	}
	if p == 0 {
		return ""
	}
	return strconv.Itoa(int(p))
}

// Rule matches packets on every field that is set (AND) and says what to do
// with them. Unset fields match anything.
type Rule struct {
	ID       uint32       // assigned when added
	Src, Dst netip.Prefix // the zero Prefix is any
	Proto    uint8        // 0 is any
	SPort    PortRange    // TCP and UDP only
	DPort    PortRange
	Priority int32 // among equally specific rules, lower wins
	Action   Action
}

// Family is 4 or 6 when the rule names addresses, 0 otherwise.
func (r *Rule) Family() int {
	for _, p := range []netip.Prefix{r.Src, r.Dst} {
		if p.IsValid() {
			if p.Addr().Is4() {
				return 4
			}
			return 6
		}
	}
	return 0
}

func (r *Rule) hasPorts() bool { return !r.SPort.Any() || !r.DPort.Any() }

// protos are the protocols a rule's ports apply to.
func (r *Rule) protos() []uint8 {
	if r.Proto != 0 {
		return []uint8{r.Proto}
	}
	return []uint8{ProtoTCP, ProtoUDP}
}

// Validate checks that the fields fit together.
func (r *Rule) Validate() error {
	if r.Src.IsValid() && r.Dst.IsValid() && r.Src.Addr().Is4() != r.Dst.Addr().Is4() {
		return fmt.Errorf("--src %s and --dst %s: both must be IPv4 or both IPv6", r.Src, r.Dst)
	}
	if r.hasPorts() && r.Proto != 0 && r.Proto != ProtoTCP && r.Proto != ProtoUDP {
		return fmt.Errorf("ports need --proto tcp or udp (or no --proto, for both), not %s", ProtoName(r.Proto))
	}
	switch fam := r.Family(); {
	case fam == 6 && r.Proto == ProtoICMP:
		return fmt.Errorf("--proto icmp with IPv6 addresses never matches: use icmpv6")
	case fam == 4 && r.Proto == ProtoICMPv6:
		return fmt.Errorf("--proto icmpv6 with IPv4 addresses never matches: use icmp")
	}
	if r.Action.Kind == Redirect && r.Action.Iface == "" {
		return fmt.Errorf("redirect needs a target interface: --action redirect:IFACE")
	}
	return nil
}

// String is the rule in the syntax of rule files.
func (r *Rule) String() string {
	var b strings.Builder
	if r.Src.IsValid() {
		fmt.Fprintf(&b, "--src %s ", r.Src)
	}
	if r.Dst.IsValid() {
		fmt.Fprintf(&b, "--dst %s ", r.Dst)
	}
	if r.Proto != 0 {
		fmt.Fprintf(&b, "--proto %s ", ProtoName(r.Proto))
	}
	if !r.SPort.Any() {
		fmt.Fprintf(&b, "--sport %s ", r.SPort)
	}
	if !r.DPort.Any() {
		fmt.Fprintf(&b, "--dport %s ", r.DPort)
	}
	if r.Priority != 0 {
		fmt.Fprintf(&b, "--priority %d ", r.Priority)
	}
	fmt.Fprintf(&b, "--action %s", r.Action)
	return b.String()
}

// ParsePrefix accepts a CIDR or a single address (a /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("address %q: use a CIDR such as 198.18.0.0/15 or 2001:db8::/32", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("CIDR %q: use a prefix such as 198.18.0.0/15 or 2001:db8::/32", s)
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// ParseRule reads a rule written as flags: --src CIDR --dst CIDR --proto P
// --sport P[-Q] --dport P[-Q] --priority N --action A (dashes optional,
// key=value accepted). A rule needs an action.
func ParseRule(line string) (Rule, error) {
	var r Rule
	fields := strings.Fields(line)
	haveAction := false
	for i := 0; i < len(fields); i++ {
		key, val, hasVal := strings.Cut(strings.TrimLeft(fields[i], "-"), "=")
		if !hasVal {
			if i+1 >= len(fields) {
				return r, fmt.Errorf("%q needs a value", fields[i])
			}
			i++
			val = fields[i]
		}
		var err error
		switch key {
		case "src":
			r.Src, err = ParsePrefix(val)
		case "dst":
			r.Dst, err = ParsePrefix(val)
		case "proto":
			r.Proto, err = ParseProto(val)
		case "sport":
			r.SPort, err = ParsePortRange(val)
		case "dport":
			r.DPort, err = ParsePortRange(val)
		case "priority":
			var n int64
			n, err = strconv.ParseInt(val, 10, 32)
			if err != nil {
				err = fmt.Errorf("priority %q: use a whole number", val)
			}
			r.Priority = int32(n)
		case "action":
			r.Action, err = ParseAction(val)
			haveAction = true
		default:
			return r, fmt.Errorf("unknown field %q: use src, dst, proto, sport, dport, priority, action", key)
		}
		if err != nil {
			return r, err
		}
	}
	if !haveAction {
		return r, fmt.Errorf("rule %q has no action: add --action drop|pass|redirect:IFACE", line)
	}
	return r, r.Validate()
}

// ParseRules reads a rule file: one rule per line, # starts a comment.
func ParseRules(text string) ([]Rule, error) {
	var rules []Rule
	for n, line := range strings.Split(text, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		r, err := ParseRule(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// better reports whether a wins over b when both match: the longer source
// prefix, then the longer destination prefix, then the lower priority, then
// a protocol over none, then the narrower ports, then the older rule.
func better(a, b *Rule) bool {
	if x, y := a.Src.Bits(), b.Src.Bits(); x != y {
		return x > y
	}
	if x, y := a.Dst.Bits(), b.Dst.Bits(); x != y {
		return x > y
	}
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	if (a.Proto != 0) != (b.Proto != 0) {
		return a.Proto != 0
	}
	if x, y := a.SPort.size()*a.DPort.size(), b.SPort.size()*b.DPort.size(); x != y {
		return x < y
	}
	return a.ID < b.ID
}
