package xdp

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// randomRules draws rules from a small space so that they overlap a lot.
func randomRules(rng *rand.Rand, n int) []Rule {
	v4 := []string{"198.18.0.0/15", "198.18.0.0/16", "198.18.1.0/24", "198.18.1.7/32", "198.19.0.0/16", "198.19.2.0/24"}
	v6 := []string{"2001:db8::/32", "2001:db8:1::/48", "2001:db8:1::7/128", "2001:db8:2::/48"}
	protos := []uint8{0, 0, ProtoTCP, ProtoUDP, ProtoICMP, ProtoICMPv6}
	ports := []PortRange{{}, {}, {53, 53}, {80, 80}, {1, 1023}, {1000, 2000}, {443, 443}}
	var rules []Rule
	for len(rules) < n {
		var r Rule
		fam := rng.IntN(3)
		pick := func(list []string) netip.Prefix {
			if rng.IntN(3) == 0 {
				return netip.Prefix{}
			}
			return netip.MustParsePrefix(list[rng.IntN(len(list))])
		}
		switch fam {
		case 1:
			r.Src, r.Dst = pick(v4), pick(v4)
		case 2:
			r.Src, r.Dst = pick(v6), pick(v6)
		}
		r.Proto = protos[rng.IntN(len(protos))]
		if r.Proto == 0 || r.Proto == ProtoTCP || r.Proto == ProtoUDP {
			r.SPort = ports[rng.IntN(len(ports))]
			if rng.IntN(2) == 0 {
				r.SPort = PortRange{}
			}
			r.DPort = ports[rng.IntN(len(ports))]
		}
		r.Priority = int32(rng.IntN(3))
		r.Action = Action{Kind: ActionKind(rng.IntN(2))}
		if r.Validate() != nil {
			continue
		}
		r.ID = uint32(len(rules) + 1)
		rules = append(rules, r)
	}
	return rules
}

func randomPacket(rng *rand.Rand) packet {
	v4 := []string{"198.18.1.7", "198.18.1.8", "198.18.200.1", "198.19.2.3", "198.19.9.9", "10.0.0.1"}
	v6 := []string{"2001:db8:1::7", "2001:db8:1::8", "2001:db8:2::1", "2001:db8:9::1", "fd00::1"}
	var p packet
	if rng.IntN(2) == 0 {
		p.src, p.dst = netip.MustParseAddr(v4[rng.IntN(len(v4))]), netip.MustParseAddr(v4[rng.IntN(len(v4))])
	} else {
		p.src, p.dst = netip.MustParseAddr(v6[rng.IntN(len(v6))]), netip.MustParseAddr(v6[rng.IntN(len(v6))])
	}
	p.proto = []uint8{ProtoTCP, ProtoUDP, ProtoICMP, ProtoICMPv6, 47}[rng.IntN(5)]
	if p.proto == ProtoTCP || p.proto == ProtoUDP {
		ps := []uint16{53, 80, 443, 1000, 1500, 2000, 2001, 8080, 1}
		p.sport, p.dport = ps[rng.IntN(len(ps))], ps[rng.IntN(len(ps))]
	}
	p.frag = rng.IntN(8) == 0
	return p
}

// TestCompileMatchesReference checks the compiled tables against a scan
// of every rule, over random overlapping rule sets.
func TestCompileMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		rules := randomRules(rng, 1+rng.IntN(40))
		tab, err := compile(rules)
		if err != nil {
			t.Fatal(err)
		}
		for range 300 {
			p := randomPacket(rng)
			want, got := reference(rules, p), tab.lookup(p)
			if want != got {
				rules = minimise(rules, p)
				tab, _ = compile(rules)
				want, got = reference(rules, p), tab.lookup(p)
				t.Fatalf("round %d: packet %+v: want rule %v, got %v\nrules: %v", round, p, ruleStr(want), ruleStr(got), rules)
			}
		}
	}
}

func ruleStr(r *Rule) string {
	if r == nil {
		return "none"
	}
	return r.String()
}

func TestParseRule(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "--src 198.18.0.1/16 --proto udp --dport 53 --action drop", want: "--src 198.18.0.0/16 --proto udp --dport 53 --action drop"},
		{in: "src=2001:db8::1 dport=1000-2000 action=pass priority=-3", want: "--src 2001:db8::1/128 --dport 1000-2000 --priority -3 --action pass"},
		{in: "--dst 198.18.0.0/15 --action redirect:veth1", want: "--dst 198.18.0.0/15 --action redirect:veth1"},
		{in: "--src 198.18.0.0/33 --action drop", err: `CIDR "198.18.0.0/33": use a prefix such as 198.18.0.0/15 or 2001:db8::/32`},
		{in: "--dport 70000 --action drop", err: `port "70000": out of range: ports go from 1 to 65535, low to high`},
		{in: "--dport 0 --action drop", err: `port "0": out of range: ports go from 1 to 65535, low to high`},
		{in: "--proto icmp --dport 1 --action drop", err: "ports need --proto tcp or udp (or no --proto, for both), not icmp"},
		{in: "--src 198.18.0.0/15 --dst 2001:db8::/32 --action drop", err: "--src and --dst: both must be IPv4 or both IPv6"},
		{in: "--src 198.18.0.0/15", err: "the rule has no action: add --action drop|pass|redirect:IFACE"},
		// Empty values and fields given twice are errors, never "any" or "the last one wins".
		{in: "--src= --action drop", err: "--src has an empty value: give one, or leave --src out to match any"},
		{in: "dport= action=drop", err: "--dport has an empty value: give one, or leave --dport out to match any"},
		{in: "--src 198.18.0.0/24 --src 198.19.0.0/24 --action drop", err: "--src is given twice: give each field once"},
		{in: "--action drop --action pass", err: "--action is given twice: give each field once"},
		{in: "--action drop --priority", err: "--priority needs a value"},
		// Echoed tokens are cut to 40 bytes.
		{in: "--action " + strings.Repeat("x", 100), err: `action "` + strings.Repeat("x", 40) + `"…: use drop, pass or redirect:IFACE`},
		{in: "--action redirect:../../9-va", err: `action "redirect:../../9-va": redirect:IFACE needs the name of an interface of ` + "`ip link`"},
		{in: "--action redirect:", err: `action "redirect:": use drop, pass or redirect:IFACE`},
		{in: "--proto foo --action drop", err: `protocol "foo": use tcp, udp, icmp, icmpv6 or a number from 1 to 255`},
	} {
		r, err := ParseRule(tc.in)
		switch {
		case tc.err != "":
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: want error %q, got %v", tc.in, tc.err, err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case r.String() != tc.want:
			t.Errorf("%q: got %q, want %q", tc.in, r.String(), tc.want)
		}
	}
}

func TestCompileManyRules(t *testing.T) {
	rules := manyRules(100_000)
	tab, err := compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	p := packet{src: netip.MustParseAddr("198.18.3.9"), dst: netip.MustParseAddr("198.19.0.1"), proto: ProtoUDP, sport: 9, dport: 1000 + 3*256%1000}
	if got, want := tab.lookup(p), reference(rules, p); got != want {
		t.Fatalf("got %v, want %v", ruleStr(got), ruleStr(want))
	}
}

// minimise drops rules while the compiled tables still disagree with the
// reference on p, so a failure shows a small rule set.
func minimise(rules []Rule, p packet) []Rule {
	for i := 0; i < len(rules); {
		less := append(append([]Rule{}, rules[:i]...), rules[i+1:]...)
		tab, err := compile(less)
		if err == nil && tab.lookup(p) != reference(less, p) {
			rules = less
			continue
		}
		i++
	}
	return rules
}
