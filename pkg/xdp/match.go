package xdp

import "net/netip"

// packet is what the filter matches on.
type packet struct {
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16
	frag         bool // a fragment after the first: no ports
}

func (p packet) hasPorts() bool {
	return !p.frag && (p.proto == ProtoTCP || p.proto == ProtoUDP)
}

// lookup does in Go what the BPF program does with the tables: the rule
// that wins for p, or nil.
func (t *tables) lookup(p packet) *Rule {
	sd, dd := dimSrc4, dimDst4
	if p.src.Is6() {
		sd, dd = dimSrc6, dimDst6
	}
	lpm := func(dim int, a netip.Addr) uint32 {
		if c := t.constClass[dim]; c != 0 {
			return c
		}
		best, bits := uint32(0), -1
		for pfx, c := range t.lpm[dim] {
			if pfx.Contains(a) && pfx.Bits() > bits {
				best, bits = c, pfx.Bits()
			}
		}
		return best
	}
	sc, dc := lpm(sd, p.src), lpm(dd, p.dst)
	if sc == 0 || dc == 0 {
		return nil
	}
	ac, ok := t.addr[[2]uint32{sc, dc}]
	if !ok {
		return nil
	}
	info := t.acs[ac]
	if p.hasPorts() && info.hasPorts {
		if pc, ok := t.ports[[3]uint32{uint32(p.proto), t.sport[p.sport], t.dport[p.dport]}]; ok {
			if r, ok := t.matches[[2]uint32{ac, pc}]; ok {
				return t.rules[r]
			}
		}
	}
	if r, ok := t.matches[[2]uint32{ac, pcProtoBase | uint32(p.proto)}]; ok {
		return t.rules[r]
	}
	if info.any >= 0 {
		return t.rules[info.any]
	}
	return nil
}
