package xdp

import "net/netip"

// manyRules makes n distinct CIDR+port rules (benchmarks and tests): a /32
// source from 198.18.0.0/15 walked in order, UDP, and one of 1000
// destination ports, dropping.
func manyRules(n int) []Rule {
	rules := make([]Rule, n)
	for i := range rules {
		a := netip.AddrFrom4([4]byte{198, 18 + byte(i>>16&1), byte(i >> 8), byte(i)})
		rules[i] = Rule{
			Src:    netip.PrefixFrom(a, 32),
			Proto:  ProtoUDP,
			DPort:  PortRange{uint16(1000 + i%1000), uint16(1000 + i%1000)},
			Action: Action{Kind: Drop},
		}
	}
	return rules
}

// ManyRules returns n distinct CIDR+port rules, for benchmarks.
func ManyRules(n int) []Rule { return manyRules(n) }
