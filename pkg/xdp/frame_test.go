package xdp

import (
	"encoding/binary"
)

// reference is the rule that should win, found the slow way.
func reference(rules []Rule, p packet) *Rule {
	var best *Rule
	for i := range rules {
		r := &rules[i]
		if !matches(r, p) {
			continue
		}
		if best == nil || better(r, best) {
			best = r
		}
	}
	return best
}

func matches(r *Rule, p packet) bool {
	fam := 6
	if p.src.Is4() {
		fam = 4
	}
	if f := r.Family(); f != 0 && f != fam {
		return false
	}
	if r.Src.IsValid() && !r.Src.Contains(p.src) || r.Dst.IsValid() && !r.Dst.Contains(p.dst) {
		return false
	}
	if r.Proto != 0 && r.Proto != p.proto {
		return false
	}
	if r.hasPorts() {
		if !p.hasPorts() || (r.Proto == 0 && p.proto != ProtoTCP && p.proto != ProtoUDP) {
			return false
		}
		if !r.SPort.contains(p.sport, p.sport) || !r.DPort.contains(p.dport, p.dport) {
			return false
		}
	}
	return true
}

// frame builds an Ethernet frame by hand.
type frame struct {
	packet
	vlans      []uint16 // TPIDs of the tags, outer first
	ipOptions  int      // IPv4 option bytes, a multiple of 4
	ext        []uint8  // IPv6 extension headers before the L4 header
	payload    int
	truncate   int // bytes cut off the end
	etherType  uint16
	badVersion bool
}

func (f frame) bytes() []byte {
	b := make([]byte, 12, 128)
	for i := range 12 {
		b[i] = byte(i + 1)
	}
	for _, tpid := range f.vlans {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, 42)
	}
	l4 := f.l4()
	switch {
	case f.etherType != 0:
		b = binary.BigEndian.AppendUint16(b, f.etherType)
		b = append(b, make([]byte, 46)...)
	case f.src.Is4():
		b = binary.BigEndian.AppendUint16(b, 0x0800)
		ihl := 5 + f.ipOptions/4
		ver := byte(4)
		if f.badVersion {
			ver = 5
		}
		b = append(b, ver<<4|byte(ihl), 0)
		b = binary.BigEndian.AppendUint16(b, uint16(ihl*4+len(l4)))
		b = append(b, 0, 1)
		frag := uint16(0)
		if f.frag {
			frag = 185 // offset in 8-byte units
		}
		b = binary.BigEndian.AppendUint16(b, frag)
		b = append(b, 64, f.proto, 0, 0)
		b = append(b, f.src.AsSlice()...)
		b = append(b, f.dst.AsSlice()...)
		for range f.ipOptions {
			b = append(b, 1) // NOP
		}
		b = append(b, l4...)
	default:
		b = binary.BigEndian.AppendUint16(b, 0x86dd)
		var ext []byte
		next := f.proto
		exts := f.ext
		if f.frag && len(exts) == 0 {
			exts = []uint8{44}
		}
		for i := len(exts) - 1; i >= 0; i-- {
			h := make([]byte, 8)
			h[0] = next
			if exts[i] == 44 && f.frag {
				binary.BigEndian.PutUint16(h[2:], 185<<3)
			}
			ext = append(h, ext...)
			next = exts[i]
		}
		b = append(b, 0x60, 0, 0, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(len(ext)+len(l4)))
		b = append(b, next, 64)
		b = append(b, f.src.AsSlice()...)
		b = append(b, f.dst.AsSlice()...)
		b = append(b, ext...)
		b = append(b, l4...)
	}
	return b[:len(b)-f.truncate]
}

func (f frame) l4() []byte {
	var h []byte
	switch {
	case f.frag:
	case f.proto == ProtoTCP:
		h = make([]byte, 20)
		h[12] = 5 << 4
	case f.proto == ProtoUDP:
		h = make([]byte, 8)
		binary.BigEndian.PutUint16(h[4:], uint16(8+f.payload))
	case f.proto == ProtoICMP, f.proto == ProtoICMPv6:
		h = make([]byte, 8)
		h[0] = 8
	}
	if len(h) >= 4 {
		binary.BigEndian.PutUint16(h[0:], f.sport)
		binary.BigEndian.PutUint16(h[2:], f.dport)
	}
	return append(h, make([]byte, f.payload)...)
}
