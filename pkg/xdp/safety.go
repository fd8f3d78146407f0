package xdp

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
)

// Guard is what every change of a filter must pass: the hazards of the
// resulting rule set (see hazards) need Force, and are then only warned
// about.
type Guard struct {
	Force bool
	// Warn gets warnings (hazards passed with Force, a rule added twice)
	// and notes (stale state replaced); nil drops them.
	Warn func(string)
}

func (g Guard) warn(msg string) {
	if g.Warn != nil {
		g.Warn(msg)
	}
}

func (g Guard) check(hz []string) error {
	if len(hz) == 0 {
		return nil
	}
	if !g.Force {
		return fmt.Errorf("%s: add --force if that is what you want", strings.Join(hz, "; "))
	}
	for _, h := range hz {
		g.warn("warning (--force): " + h)
	}
	return nil
}

// duplicates warns when an added rule matches the same packets as an
// older rule of the set.
func (g Guard) duplicates(r Rule, rules []Rule) {
	for _, o := range rules {
		if o.ID < r.ID && o.Src == r.Src && o.Dst == r.Dst && o.Proto == r.Proto && o.SPort == r.SPort && o.DPort == r.DPort {
			g.warn(fmt.Sprintf("warning: rule %d matches the same packets as rule %d (%s)", r.ID, o.ID, o.String()))
			return
		}
	}
}

// hazards says why a rule set on iface could cut the operator off the
// machine; each needs --force. It judges the resulting set: the SSH
// session in $SSH_CONNECTION against the compiled set t of rules; on the
// interface of the default route, every new rule that is not a pass rule,
// and every pass rule removed from old whose traffic another rule (or the
// allow policy) would now drop. loading says the policy is new too.
func hazards(iface string, policy Policy, loading bool, old, rules []Rule, t *tables) []string {
	var out []string
	if loading && policy == PolicyAllow {
		out = append(out, fmt.Sprintf("--policy allow drops every packet on %s that no rule passes", iface))
	}
	if p, ok := sshSession(); ok {
		r := t.lookup(p)
		switch {
		case r != nil && r.Action.Kind != Pass:
			out = append(out, fmt.Sprintf("rule %q would %s your SSH session from %s (if it arrives on %s)", r.String(), r.Action.verb(), p.src, iface))
		case r == nil && policy == PolicyAllow:
			out = append(out, fmt.Sprintf("no rule passes your SSH session from %s (if it arrives on %s)", p.src, iface))
		}
	}
	if !defaultRouteIface(iface) {
		return out
	}
	had, has := map[uint32]bool{}, map[uint32]bool{}
	for _, r := range old {
		had[r.ID] = true
	}
	for _, r := range rules {
		has[r.ID] = true
		if !had[r.ID] && r.Action.Kind != Pass {
			out = append(out, fmt.Sprintf("%s carries the default route, and rule %q would %s some of its traffic", iface, r.String(), r.Action.verb()))
			break
		}
	}
	for _, gone := range old {
		if has[gone.ID] || gone.Action.Kind != Pass {
			continue
		}
		if policy == PolicyAllow {
			out = append(out, fmt.Sprintf("%s carries the default route, and without rule %d %q the allow policy drops what it passed", iface, gone.ID, gone.String()))
			break
		}
		if i := slices.IndexFunc(rules, func(r Rule) bool { return r.Action.Kind != Pass && overlaps(&gone, &r) }); i >= 0 {
			out = append(out, fmt.Sprintf("%s carries the default route, and without rule %d %q rule %d %q would %s some of its traffic", iface, gone.ID, gone.String(), rules[i].ID, rules[i].String(), rules[i].Action.verb()))
			break
		}
	}
	return out
}

// overlaps reports whether some packet matches both a and b.
func overlaps(a, b *Rule) bool {
	if fa, fb := a.Family(), b.Family(); fa != 0 && fb != 0 && fa != fb {
		return false
	}
	meet := func(x, y netip.Prefix) bool { return !x.IsValid() || !y.IsValid() || x.Overlaps(y) }
	if !meet(a.Src, b.Src) || !meet(a.Dst, b.Dst) {
		return false
	}
	protos := func(r *Rule) []uint8 {
		if r.Proto == 0 && !r.hasPorts() {
			return nil // any
		}
		return r.protos()
	}
	pa, pb := protos(a), protos(b)
	if pa != nil && pb != nil && !slices.ContainsFunc(pa, func(p uint8) bool { return slices.Contains(pb, p) }) {
		return false
	}
	ports := func(x, y PortRange) bool { return x.Any() || y.Any() || (x.Lo <= y.Hi && y.Lo <= x.Hi) }
	return ports(a.SPort, b.SPort) && ports(a.DPort, b.DPort)
}

// sshSession is the incoming packet of the SSH session this process runs
// in, from $SSH_CONNECTION ("client port server port").
func sshSession() (packet, bool) {
	f := strings.Fields(os.Getenv("SSH_CONNECTION"))
	if len(f) != 4 {
		return packet{}, false
	}
	src, err1 := netip.ParseAddr(f[0])
	dst, err2 := netip.ParseAddr(f[2])
	sport, err3 := strconv.ParseUint(f[1], 10, 16)
	dport, err4 := strconv.ParseUint(f[3], 10, 16)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || src.Unmap().Is4() != dst.Unmap().Is4() {
		return packet{}, false
	}
	return packet{src: src.Unmap(), dst: dst.Unmap(), proto: ProtoTCP, sport: uint16(sport), dport: uint16(dport)}, true
}

// defaultRouteIface reports whether iface carries a default route in this
// network namespace.
func defaultRouteIface(iface string) bool {
	l, err := netlink.LinkByName(iface)
	if err != nil {
		return false
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteList(l, fam)
		if err != nil {
			continue
		}
		for _, r := range routes {
			if r.Dst == nil {
				return true
			}
			if ones, _ := r.Dst.Mask.Size(); ones == 0 {
				return true
			}
		}
	}
	return false
}

// verb says what an action does to a packet, in a sentence.
func (a Action) verb() string {
	if a.Kind == Redirect {
		return "redirect (to " + a.Iface + ")"
	}
	return a.String()
}
