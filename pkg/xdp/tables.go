package xdp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/bpfkit/bpfkit/pkg/loader"
)

type (
	cfgT     = xdpFilterXdpfConfig
	lpm4Key  = xdpFilterXdpfLpm4Key
	lpm6Key  = xdpFilterXdpfLpm6Key
	addrKey  = xdpFilterXdpfAddrKey
	matchKey = xdpFilterXdpfMatchKey
	verdict  = xdpFilterXdpfVerdict
	counter  = xdpFilterXdpfCounter
	ruleRec  = xdpFilterXdpfRule
	pfx4Key  = xdpFilterXdpfPfx4Key
	pfx6Key  = xdpFilterXdpfPfx6Key
	acVal    = xdpFilterXdpfAc
	classVal = xdpFilterXdpfClass
)

const portClassesPerGen = 65536

func (f *Filter) config() (cfgT, error) {
	var c cfgT
	if err := f.maps.Config.Lookup(uint32(0), &c); err != nil {
		return c, fmt.Errorf("read the filter's config: %w", err)
	}
	return c, nil
}

func (f *Filter) setConfig(edit func(*cfgT)) error {
	c, err := f.config()
	if err != nil {
		return err
	}
	edit(&c)
	if err := f.maps.Config.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("write the filter's config: %w", err)
	}
	return nil
}

// genKeys reads a table whose keys start with their generation (the first
// byte after LPM's prefixlen) and returns, per generation, a function that
// deletes that generation's entries.
func genKeys[K, V any](m *ebpf.Map, genOf func(*K) uint32) ([2]func() error, error) {
	var keys [2][]K
	err := loader.ReadAll(m, func(k *K, _ *V) {
		g := genOf(k) & 1
		keys[g] = append(keys[g], *k)
	})
	return [2]func() error{
		func() error { return loader.DeleteAll(m, keys[0]) },
		func() error { return loader.DeleteAll(m, keys[1]) },
	}, err
}

// generations reads every compiled table once and returns, per generation,
// a function that empties it. Both are needed by one change: the inactive
// generation is empty unless a change was interrupted, and the old live one
// goes once the new one is live. Only rule changes write these tables, one
// at a time (the lock), so the keys read stay true until then.
func (f *Filter) generations() (clear [2]func() error, err error) {
	var dels [][2]func() error
	add := func(d [2]func() error, e error) {
		dels = append(dels, d)
		err = errors.Join(err, e)
	}
	add(genKeys[lpm4Key, classVal](f.maps.Src4, func(k *lpm4Key) uint32 { return uint32(k.Gen) }))
	add(genKeys[lpm4Key, classVal](f.maps.Dst4, func(k *lpm4Key) uint32 { return uint32(k.Gen) }))
	add(genKeys[lpm6Key, classVal](f.maps.Src6, func(k *lpm6Key) uint32 { return uint32(k.Gen) }))
	add(genKeys[lpm6Key, classVal](f.maps.Dst6, func(k *lpm6Key) uint32 { return uint32(k.Gen) }))
	add(genKeys[pfx4Key, classVal](f.maps.Src4h, func(k *pfx4Key) uint32 { return k.GenLen >> 8 }))
	add(genKeys[pfx4Key, classVal](f.maps.Dst4h, func(k *pfx4Key) uint32 { return k.GenLen >> 8 }))
	add(genKeys[pfx6Key, classVal](f.maps.Src6h, func(k *pfx6Key) uint32 { return k.GenLen >> 8 }))
	add(genKeys[pfx6Key, classVal](f.maps.Dst6h, func(k *pfx6Key) uint32 { return k.GenLen >> 8 }))
	add(genKeys[addrKey, acVal](f.maps.AddrClasses, func(k *addrKey) uint32 { return k.Gen }))
	add(genKeys[matchKey, verdict](f.maps.Matches, func(k *matchKey) uint32 { return k.Gen }))
	for g := range clear {
		clear[g] = func() error {
			var errs []error
			for _, d := range dels {
				errs = append(errs, d[g]())
			}
			return errors.Join(errs...)
		}
	}
	return clear, err
}

// write installs compiled tables as the inactive generation, switches to
// it, then removes the old one: packets see either the old rule set or the
// new one, never a mix. old is the rule set being replaced (nil at load).
func (f *Filter) write(t *tables, rules []Rule, ifindexes map[string]int, old []Rule) error {
	live, err := f.config()
	if err != nil {
		return err
	}
	cur := live.Gen & 1
	gen := cur ^ 1
	var c cfgT
	clear, err := f.generations()
	if err != nil {
		return err
	}
	if err := clear[gen](); err != nil {
		return err
	}
	g8 := uint8(gen)
	acOf := func(sc, dc uint32) acVal {
		v := acVal{Flags: acValid}
		if ac, ok := t.addr[[2]uint32{sc, dc}]; ok {
			v = t.acValue(ac, ifindexes)
		}
		return v
	}
	for fam, dims := range map[int][2]int{4: {dimSrc4, dimDst4}, 6: {dimSrc6, dimDst6}} {
		sd, dd := dims[0], dims[1]
		sConst, dConst := t.constClass[sd], t.constClass[dd]
		both := acVal{}
		if sConst != 0 && dConst != 0 {
			both = acOf(sConst, dConst)
		}
		if fam == 4 {
			c.Ac4 = both
		} else {
			c.Ac6 = both
		}
		for _, dim := range dims {
			if t.constClass[dim] != 0 {
				continue // the program never looks this one up
			}
			// Few prefix lengths: a hash per length; else the trie.
			var lens []int
			for p := range t.lpm[dim] {
				if !slices.Contains(lens, p.Bits()) {
					lens = append(lens, p.Bits())
				}
			}
			slices.Sort(lens)
			slices.Reverse(lens)
			byLength := len(lens) <= len(c.Lens[dim].Len)
			if byLength {
				c.Lens[dim].N = uint8(len(lens))
				for i, l := range lens {
					c.Lens[dim].Len[i] = uint8(l)
				}
			}
			var keys4 []lpm4Key
			var keys6 []lpm6Key
			var hkeys4 []pfx4Key
			var hkeys6 []pfx6Key
			var vals []classVal
			for p, class := range t.lpm[dim] {
				v := classVal{Class: class}
				switch {
				case dim == sd && dConst != 0:
					v.Ac = acOf(class, dConst)
				case dim == dd && sConst != 0:
					v.Ac = acOf(sConst, class)
				}
				genLen := gen<<8 | uint32(p.Bits())
				switch {
				case fam == 4 && byLength:
					hkeys4 = append(hkeys4, pfx4Key{GenLen: genLen, Addr: p.Addr().As4()})
				case fam == 4:
					keys4 = append(keys4, lpm4Key{Prefixlen: uint32(32 + p.Bits()), Gen: g8, Addr: p.Addr().As4()})
				case byLength:
					hkeys6 = append(hkeys6, pfx6Key{GenLen: genLen, Addr: p.Addr().As16()})
				default:
					keys6 = append(keys6, lpm6Key{Prefixlen: uint32(32 + p.Bits()), Gen: g8, Addr: p.Addr().As16()})
				}
				vals = append(vals, v)
			}
			lpm := [...]*ebpf.Map{dimSrc4: f.maps.Src4, dimDst4: f.maps.Dst4, dimSrc6: f.maps.Src6, dimDst6: f.maps.Dst6}[dim]
			hash := [...]*ebpf.Map{dimSrc4: f.maps.Src4h, dimDst4: f.maps.Dst4h, dimSrc6: f.maps.Src6h, dimDst6: f.maps.Dst6h}[dim]
			switch {
			case fam == 4 && byLength:
				err = loader.PutAll(hash, hkeys4, vals)
			case fam == 4:
				err = loader.PutAll(lpm, keys4, vals)
			case byLength:
				err = loader.PutAll(hash, hkeys6, vals)
			default:
				err = loader.PutAll(lpm, keys6, vals)
			}
			if err != nil {
				return err
			}
		}
	}
	var aks []addrKey
	var avs []acVal
	for k, ac := range t.addr {
		aks = append(aks, addrKey{Gen: gen, Sc: k[0], Dc: k[1]})
		avs = append(avs, t.acValue(ac, ifindexes))
	}
	if err := loader.PutAll(f.maps.AddrClasses, aks, avs); err != nil {
		return err
	}
	if t.havePorts {
		idx := make([]uint32, portClassesPerGen)
		for p := range idx {
			idx[p] = gen*portClassesPerGen + uint32(p)
		}
		if err := loader.PutAll(f.maps.SportClass, idx, t.sport[:]); err != nil {
			return err
		}
		if err := loader.PutAll(f.maps.DportClass, idx, t.dport[:]); err != nil {
			return err
		}
	}
	for _, ifindex := range ifindexes {
		if err := f.maps.TxPorts.Put(uint32(ifindex), uint32(ifindex)); err != nil {
			return fmt.Errorf("add redirect target %d: %w", ifindex, err)
		}
	}
	// The match table is keyed by the port classes' tuples, which saves the
	// program a lookup of the port class.
	tuples := map[uint32][][3]uint32{}
	for k, pc := range t.ports {
		tuples[pc] = append(tuples[pc], k)
	}
	var mks []matchKey
	var mvs []verdict
	for k, r := range t.matches {
		v := t.verdict(r, ifindexes)
		if k[1] >= pcProtoBase {
			mks = append(mks, matchKey{Gen: gen, Ac: k[0], Proto: k[1] & 0xff, Spc: noPorts, Dpc: noPorts})
			mvs = append(mvs, v)
			continue
		}
		for _, tu := range tuples[k[1]] {
			mks = append(mks, matchKey{Gen: gen, Ac: k[0], Proto: tu[0], Spc: tu[1], Dpc: tu[2]})
			mvs = append(mvs, v)
		}
		if len(mks) > maxEntries {
			return fmt.Errorf("rule set needs more than %d match entries: use fewer overlapping port ranges", maxEntries)
		}
	}
	if err := loader.PutAll(f.maps.Matches, mks, mvs); err != nil {
		return err
	}

	// Counters of rules that are new start from zero.
	had := map[uint32]bool{}
	for _, r := range old {
		had[r.ID] = true
	}
	var fresh []uint32
	for _, r := range rules {
		if !had[r.ID] {
			fresh = append(fresh, r.ID)
		}
	}
	zeros := make([]counter, len(fresh)*ebpf.MustPossibleCPU())
	if err := loader.PutAll(f.maps.RuleStats, fresh, zeros); err != nil {
		return fmt.Errorf("reset the counters of new rules: %w", err)
	}

	c.Src4Class, c.Dst4Class = t.constClass[dimSrc4], t.constClass[dimDst4]
	c.Src6Class, c.Dst6Class = t.constClass[dimSrc6], t.constClass[dimDst6]
	if err := f.maps.Config.Put(1+gen, &c); err != nil {
		return fmt.Errorf("write the new rule set's config: %w", err)
	}
	live.Gen, live.Policy = gen, xdpFilterXdpfPolicy(f.Policy)
	if err := f.maps.Config.Put(uint32(0), &live); err != nil {
		return fmt.Errorf("switch to the new rule set: %w", err)
	}
	if err := clear[cur](); err != nil {
		return err
	}
	return f.storeRules(rules, old, ifindexes)
}

// storeRules keeps the rule set in the rules map, writing only the rules
// that are new or changed and removing those that are gone.
func (f *Filter) storeRules(rules, old []Rule, ifindexes map[string]int) error {
	m := f.maps.Rules
	encode := func(r *Rule) ruleRec {
		rec := encodeRule(r)
		rec.Ifindex = uint32(ifindexes[r.Action.Iface])
		return rec
	}
	had := make(map[uint32]ruleRec, len(old))
	for i := range old {
		had[old[i].ID] = encode(&old[i])
	}
	var ids []uint32
	var recs []ruleRec
	for i := range rules {
		rec := encode(&rules[i])
		if prev, ok := had[rules[i].ID]; !ok || prev != rec {
			ids, recs = append(ids, rules[i].ID), append(recs, rec)
		}
		delete(had, rules[i].ID)
	}
	if err := loader.PutAll(m, ids, recs); err != nil {
		return fmt.Errorf("store the rules: %w", err)
	}
	var gone []uint32
	for id := range had {
		gone = append(gone, id)
	}
	if err := loader.DeleteAll(m, gone); err != nil {
		return fmt.Errorf("remove deleted rules: %w", err)
	}
	return nil
}

func encodeRule(r *Rule) ruleRec {
	var rec ruleRec
	if r.Src.IsValid() {
		rec.SrcLen = uint8(r.Src.Bits())
		copy(rec.Src[:], r.Src.Addr().AsSlice())
	}
	if r.Dst.IsValid() {
		rec.DstLen = uint8(r.Dst.Bits())
		copy(rec.Dst[:], r.Dst.Addr().AsSlice())
	}
	rec.Family = uint8(r.Family())
	if r.Src.IsValid() {
		rec.Flags |= ruleSrc
	}
	if r.Dst.IsValid() {
		rec.Flags |= ruleDst
	}
	rec.Proto = r.Proto
	if !r.SPort.Any() {
		rec.Flags |= ruleSport
		rec.SportLo, rec.SportHi = r.SPort.Lo, r.SPort.Hi
	}
	if !r.DPort.Any() {
		rec.Flags |= ruleDport
		rec.DportLo, rec.DportHi = r.DPort.Lo, r.DPort.Hi
	}
	rec.Priority = r.Priority
	rec.Action = xdpFilterXdpfVerdictAction(r.Action.Kind)
	return rec
}

func decodeRule(id uint32, rec *ruleRec, ifname func(int) string) Rule {
	r := Rule{ID: id, Proto: rec.Proto, Priority: rec.Priority, Action: Action{Kind: ActionKind(rec.Action)}}
	addr := func(b [16]uint8) netip.Addr {
		if rec.Family == 4 {
			return netip.AddrFrom4([4]byte(b[:4]))
		}
		return netip.AddrFrom16(b)
	}
	if rec.Flags&ruleSrc != 0 {
		r.Src = netip.PrefixFrom(addr(rec.Src), int(rec.SrcLen))
	}
	if rec.Flags&ruleDst != 0 {
		r.Dst = netip.PrefixFrom(addr(rec.Dst), int(rec.DstLen))
	}
	if rec.Flags&ruleSport != 0 {
		r.SPort = PortRange{rec.SportLo, rec.SportHi}
	}
	if rec.Flags&ruleDport != 0 {
		r.DPort = PortRange{rec.DportLo, rec.DportHi}
	}
	if r.Action.Kind == Redirect {
		r.Action.Iface = ifname(int(rec.Ifindex))
	}
	return r
}

// noPorts is the port classes of match entries for rules without ports.
const noPorts = 0xffffffff

// Flags of acVal (enum xdpf_ac_flags) and of ruleRec (enum xdpf_rule_flags).
const (
	acValid  = xdpFilterXdpfAcFlagsXDPF_AC_VALID
	acAny    = xdpFilterXdpfAcFlagsXDPF_AC_ANY
	acProto  = xdpFilterXdpfAcFlagsXDPF_AC_PROTO
	acPorts  = xdpFilterXdpfAcFlagsXDPF_AC_PORTS
	acInline = xdpFilterXdpfAcFlagsXDPF_AC_INLINE

	ruleSport = xdpFilterXdpfRuleFlagsXDPF_RULE_SPORT
	ruleDport = xdpFilterXdpfRuleFlagsXDPF_RULE_DPORT
	ruleSrc   = xdpFilterXdpfRuleFlagsXDPF_RULE_SRC
	ruleDst   = xdpFilterXdpfRuleFlagsXDPF_RULE_DST
)

func (t *tables) verdict(r int32, ifindexes map[string]int) verdict {
	rule := t.rules[r]
	return verdict{Rule: rule.ID, Action: xdpFilterXdpfVerdictAction(rule.Action.Kind), Ifindex: uint32(ifindexes[rule.Action.Iface])}
}

// acValue is the entry of address class ac.
func (t *tables) acValue(ac uint32, ifindexes map[string]int) acVal {
	v := acVal{Ac: ac, Flags: acValid}
	info := t.acs[ac]
	if info == nil {
		return v
	}
	if info.any >= 0 {
		v.Flags |= acAny
		v.Any = t.verdict(info.any, ifindexes)
	}
	if info.hasProto {
		v.Flags |= acProto
	}
	if info.hasPorts {
		v.Flags |= acPorts
	}
	// Few rules besides the catch-all (which is last): compare them in place.
	rest := info.set
	if info.any >= 0 {
		rest = rest[:len(rest)-1]
	}
	if len(rest) <= len(v.In) {
		v.Flags |= acInline
		v.N_inline = uint32(len(rest))
		for i, r := range rest {
			rule := t.rules[r]
			e := &v.In[i]
			e.Proto, e.V = rule.Proto, t.verdict(r, ifindexes)
			if rule.hasPorts() {
				e.Ports = 1
				e.SportLo, e.SportHi = portBounds(rule.SPort)
				e.DportLo, e.DportHi = portBounds(rule.DPort)
			}
		}
	}
	return v
}

func portBounds(r PortRange) (uint16, uint16) {
	if r.Any() {
		return 0, 65535
	}
	return r.Lo, r.Hi
}
