package xdp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Action is what a rule does with the packets it matches.
type Action struct {
	Kind  ActionKind
	Iface string // redirect target
}

// ActionKind is drop, pass or redirect (enum xdpf_verdict_action).
type ActionKind uint32

const (
	Pass     = ActionKind(xdpFilterXdpfVerdictActionXDPF_ACT_PASS)
	Drop     = ActionKind(xdpFilterXdpfVerdictActionXDPF_ACT_DROP)
	Redirect = ActionKind(xdpFilterXdpfVerdictActionXDPF_ACT_REDIRECT)
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
		iface := s[len("redirect:"):]
		if err := ValidIface(iface); err != nil {
			return Action{}, &valueError{kind: "action", val: s, advice: "redirect:IFACE needs the name of an interface of `ip link`"}
		}
		return Action{Kind: Redirect, Iface: iface}, nil
	}
	return Action{}, &valueError{kind: "action", val: s, advice: "use drop, pass or redirect:IFACE"}
}

// valueError is a value that does not parse. Its message quotes the value
// cut short (Quote); Redacted says the same without the value, for rule
// files, whose text a message must never repeat.
type valueError struct {
	kind, val, advice string
}

func (e *valueError) Error() string    { return fmt.Sprintf("%s %s: %s", e.kind, Quote(e.val), e.advice) }
func (e *valueError) Redacted() string { return fmt.Sprintf("%s: %s", e.kind, e.advice) }

// redacted is err's message without the user's values, where it has one.
func redacted(err error) string {
	var v *valueError
	if errors.As(err, &v) {
		return v.Redacted()
	}
	return err.Error()
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
		return PortRange{}, &valueError{kind: "port", val: s, advice: "use a number P or a range P-Q"}
	}
	if l < 1 || h > 65535 || l > h {
		return PortRange{}, &valueError{kind: "port", val: s, advice: "out of range: ports go from 1 to 65535, low to high"}
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
		return 0, &valueError{kind: "protocol", val: s, advice: "use tcp, udp, icmp, icmpv6 or a number from 1 to 255"}
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
		return errors.New("--src and --dst: both must be IPv4 or both IPv6")
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
			return netip.Prefix{}, &valueError{kind: "address", val: s, advice: "use a CIDR such as 198.18.0.0/15 or 2001:db8::/32"}
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, &valueError{kind: "CIDR", val: s, advice: "use a prefix such as 198.18.0.0/15 or 2001:db8::/32"}
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// Field is one field of a rule as the user gave it: a flag, or a
// key-value pair of a rule file line.
type Field struct {
	Key, Value string
}

// ruleKeys are the fields of a rule, in the order String writes them.
var ruleKeys = []string{"src", "dst", "proto", "sport", "dport", "priority", "action"}

// FieldError is a field of a rule that is wrong. Index is its position in
// the rule (from 1), Key its name ("" when the name itself is unknown).
type FieldError struct {
	Index int
	Key   string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Redacted names the field and the problem without the field's value.
func (e *FieldError) Redacted() string {
	if e.Key == "" {
		return fmt.Sprintf("field %d: %s", e.Index, redacted(e.Err))
	}
	return fmt.Sprintf("field %d (%s): %s", e.Index, e.Key, redacted(e.Err))
}

// RuleFromFields builds a rule from its fields: each known key at most
// once, with a value that is not empty, and an action. It is the one
// parser of rules: ParseRule, rule files and the flags of `rule add` all
// come here.
func RuleFromFields(fields []Field) (Rule, error) {
	var r Rule
	seen := map[string]bool{}
	for i, fl := range fields {
		ferr := func(err error) error { return &FieldError{Index: i + 1, Key: fl.Key, Err: err} }
		if !slices.Contains(ruleKeys, fl.Key) {
			return r, &FieldError{Index: i + 1, Err: &valueError{kind: "unknown field", val: fl.Key, advice: "use src, dst, proto, sport, dport, priority, action"}}
		}
		if seen[fl.Key] {
			return r, ferr(fmt.Errorf("--%s is given twice: give each field once", fl.Key))
		}
		seen[fl.Key] = true
		if fl.Value == "" {
			return r, ferr(fmt.Errorf("--%s has an empty value: give one, or leave --%s out to match any", fl.Key, fl.Key))
		}
		var err error
		val := fl.Value
		switch fl.Key {
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
				err = &valueError{kind: "priority", val: val, advice: "use a whole number from -2147483648 to 2147483647"}
			}
			r.Priority = int32(n)
		case "action":
			r.Action, err = ParseAction(val)
		}
		if err != nil {
			return r, ferr(err)
		}
	}
	if !seen["action"] {
		return r, errors.New("the rule has no action: add --action drop|pass|redirect:IFACE")
	}
	return r, r.Validate()
}

// ParseRule reads a rule written as flags: --src CIDR --dst CIDR --proto P
// --sport P[-Q] --dport P[-Q] --priority N --action A (dashes optional,
// key=value accepted). A rule needs an action.
func ParseRule(line string) (Rule, error) {
	words := strings.Fields(line)
	var fields []Field
	for i := 0; i < len(words); i++ {
		key, val, hasVal := strings.Cut(strings.TrimLeft(words[i], "-"), "=")
		if !hasVal {
			if i+1 >= len(words) {
				err := errors.New("needs a value")
				if slices.Contains(ruleKeys, key) {
					err = fmt.Errorf("--%s needs a value", key)
				}
				return Rule{}, &FieldError{Index: len(fields) + 1, Key: knownKey(key), Err: err}
			}
			i++
			val = words[i]
		}
		fields = append(fields, Field{Key: key, Value: val})
	}
	return RuleFromFields(fields)
}

func knownKey(k string) string {
	if slices.Contains(ruleKeys, k) {
		return k
	}
	return ""
}

// ParseRules reads a rule file: one rule per line, # starts a comment. Its
// errors name the line and the field, never the text of the line.
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
			var fe *FieldError
			if errors.As(err, &fe) {
				return nil, fmt.Errorf("line %d: %s", n+1, fe.Redacted())
			}
			return nil, fmt.Errorf("line %d: %s", n+1, redacted(err))
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
