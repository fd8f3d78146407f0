package xdp

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
)

// Hazards says why a policy and rule set on iface could cut the operator
// off the machine; each needs --force. It checks the SSH session in
// $SSH_CONNECTION against the whole set, and the interface of the default
// route against the new rules, rules[firstNew:]. loading says the policy is
// new too.
func Hazards(iface string, policy Policy, rules []Rule, firstNew int, loading bool) ([]string, error) {
	var out []string
	if loading && policy == PolicyAllow {
		out = append(out, fmt.Sprintf("--policy allow drops every packet on %s that no rule passes", iface))
	}
	prepared, err := prepare(rules)
	if err != nil {
		return nil, err
	}
	t, err := compile(prepared)
	if err != nil {
		return nil, err
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
	if defaultRouteIface(iface) {
		for _, r := range prepared[min(firstNew, len(prepared)):] {
			if r.Action.Kind != Pass {
				out = append(out, fmt.Sprintf("%s carries the default route, and rule %q would %s some of its traffic", iface, r.String(), r.Action.verb()))
				break
			}
		}
	}
	return out, nil
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
