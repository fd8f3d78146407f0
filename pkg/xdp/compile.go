package xdp

import (
	"fmt"
	"net/netip"
	"slices"
	"unsafe"
)

// Limits of one compiled rule set (per generation of the tables).
const (
	MaxRules   = 131072 - 1 // rule ids 1..MaxRules
	maxEntries = 524288     // entries of each class table
	// maxWork bounds the compiler's work, so a pathological rule set fails
	// with a message instead of running for minutes.
	maxWork = 400_000_000
)

const (
	pcProtoBase = 0xffffff00
)

// tables is a rule set compiled into the program's lookups (docs/xdp.md):
// each field maps to an equivalence class (the set of rules that field
// value satisfies), pairs of classes map to classes of their intersection,
// and the last table gives the best rule of the final class.
type tables struct {
	rules      []*Rule // in rank order: rules[i] beats rules[j] when i < j
	lpm        [4]map[netip.Prefix]uint32
	constClass [4]uint32 // nonzero: the lpm dimension has only /0
	addr       map[[2]uint32]uint32
	sport      [65536]uint32
	dport      [65536]uint32
	ports      map[[3]uint32]uint32 // proto, spc, dpc -> pc
	matches    map[[2]uint32]int32  // ac, pc -> index in rules
	acs        map[uint32]*acInfo
	havePorts  bool
	work       int
}

// acInfo is what an address class's entry carries besides its id.
type acInfo struct {
	set      []int32 // its rules, best first
	any      int32   // best rule without protocol or ports, -1 for none
	hasProto bool    // the match table has protocol entries for it
	hasPorts bool    // and port entries
}

// Dimensions of tables.lpm.
const (
	dimSrc4 = iota
	dimDst4
	dimSrc6
	dimDst6
)

type interner struct {
	ids  map[string]uint32
	sets [][]int32 // in the order of list
	list []uint32  // the ids, in the order they were given
	next *uint32
}

func newInterner(next *uint32) *interner {
	return &interner{ids: map[string]uint32{}, next: next}
}

func setKey(set []int32) string {
	if len(set) == 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(unsafe.Pointer(&set[0])), len(set)*4))
}

func (in *interner) id(set []int32) uint32 {
	k := setKey(set)
	if id, ok := in.ids[k]; ok {
		return id
	}
	id := *in.next
	*in.next++
	in.ids[k] = id
	in.list = append(in.list, id)
	in.sets = append(in.sets, set)
	return id
}

// catchAll reports whether a rule matches every packet that its address
// fields allow: no protocol, no ports.
func (r *Rule) catchAll() bool { return r.Proto == 0 && !r.hasPorts() }

func (t *tables) spend(n int) error {
	t.work += n
	if t.work > maxWork {
		return fmt.Errorf("rule set too complex to compile: too many overlapping wildcard rules (split it, or give rules narrower prefixes)")
	}
	return nil
}

// compile turns a rule set into tables. Rules must be valid.
func compile(rules []Rule) (*tables, error) {
	if len(rules) > MaxRules {
		return nil, fmt.Errorf("%d rules: at most %d fit", len(rules), MaxRules)
	}
	t := &tables{
		addr:    map[[2]uint32]uint32{},
		ports:   map[[3]uint32]uint32{},
		matches: map[[2]uint32]int32{},
		acs:     map[uint32]*acInfo{},
	}
	for i := range rules {
		t.rules = append(t.rules, &rules[i])
	}
	slices.SortStableFunc(t.rules, func(a, b *Rule) int {
		if better(a, b) {
			return -1
		}
		if better(b, a) {
			return 1
		}
		return 0
	})

	next := uint32(1)
	acs := newInterner(&next)
	for _, fam := range []int{4, 6} {
		sd, dd := dimSrc4, dimDst4
		if fam == 6 {
			sd, dd = dimSrc6, dimDst6
		}
		srcs, err := t.dimension(fam, sd, &next, func(r *Rule) netip.Prefix { return r.Src },
			func(r *Rule) bool { return r.catchAll() && r.Dst.Bits() <= 0 })
		if err != nil {
			return nil, err
		}
		dsts, err := t.dimension(fam, dd, &next, func(r *Rule) netip.Prefix { return r.Dst },
			func(r *Rule) bool { return r.catchAll() && r.Src.Bits() <= 0 })
		if err != nil {
			return nil, err
		}
		if srcs == nil || dsts == nil {
			continue
		}
		if err := t.addrClasses(srcs, dsts, acs); err != nil {
			return nil, err
		}
	}
	if len(t.addr) > maxEntries {
		return nil, fmt.Errorf("rule set needs %d address classes: at most %d fit", len(t.addr), maxEntries)
	}

	pcOfRule, pcProto, err := t.portClasses()
	if err != nil {
		return nil, err
	}
	if err := t.matchTable(acs, pcOfRule, pcProto); err != nil {
		return nil, err
	}
	// The program's match table has an entry per port tuple of each class.
	perPC := map[uint32]int{}
	for _, pc := range t.ports {
		perPC[pc]++
	}
	n := 0
	for k := range t.matches {
		if k[1] >= pcProtoBase {
			n++
		} else {
			n += perPC[k[1]]
		}
	}
	if n > maxEntries {
		return nil, fmt.Errorf("rule set needs %d match entries, at most %d fit: use fewer overlapping port ranges", n, maxEntries)
	}
	return t, nil
}

// dimension computes the classes of one address field in one family: each
// distinct prefix of a rule gets the class of the rules whose prefix
// contains it (the longest-prefix match finds the most specific; all the
// others that match are its ancestors).
func (t *tables) dimension(fam, dim int, next *uint32, get func(*Rule) netip.Prefix, stop func(*Rule) bool) (*interner, error) {
	any := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if fam == 6 {
		any = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	byPrefix := map[netip.Prefix][]int32{}
	var lens []int
	for i, r := range t.rules {
		if f := r.Family(); f != 0 && f != fam {
			continue
		}
		p := get(r)
		if !p.IsValid() {
			p = any
		}
		byPrefix[p] = append(byPrefix[p], int32(i))
		if !slices.Contains(lens, p.Bits()) {
			lens = append(lens, p.Bits())
		}
	}
	if len(byPrefix) == 0 {
		return nil, nil
	}
	slices.Sort(lens)
	in := newInterner(next)
	t.lpm[dim] = map[netip.Prefix]uint32{}
	for p := range byPrefix {
		var set []int32
		for _, l := range lens {
			if l > p.Bits() {
				break
			}
			set = append(set, byPrefix[netip.PrefixFrom(p.Addr(), l).Masked()]...)
		}
		slices.Sort(set)
		for i, r := range set {
			if stop(t.rules[r]) {
				set = set[:i+1]
				break
			}
		}
		if err := t.spend(len(set) + len(lens)); err != nil {
			return nil, err
		}
		t.lpm[dim][p] = in.id(set)
	}
	if len(byPrefix) == 1 && byPrefix[any] != nil {
		t.constClass[dim] = t.lpm[dim][any]
	}
	return in, nil
}

// addrClasses intersects every source class with every destination class
// that shares a rule, keeping each intersection in rank order.
func (t *tables) addrClasses(srcs, dsts *interner, acs *interner) error {
	dOfRule := map[int32][]uint32{}
	for i, set := range dsts.sets {
		for _, r := range set {
			dOfRule[r] = append(dOfRule[r], dsts.list[i])
		}
	}
	acc := map[uint32][]int32{}
	done := map[uint32]bool{}
	for i, set := range srcs.sets {
		s := srcs.list[i]
		clear(acc)
		clear(done)
		for _, r := range set {
			ds := dOfRule[r]
			if err := t.spend(len(ds)); err != nil {
				return err
			}
			for _, d := range ds {
				if done[d] {
					continue
				}
				acc[d] = append(acc[d], r)
				if t.rules[r].catchAll() {
					done[d] = true
				}
			}
		}
		for d, set := range acc {
			t.addr[[2]uint32{s, d}] = acs.id(set)
		}
		if len(t.addr) > maxEntries {
			return fmt.Errorf("rule set needs more than %d address classes", maxEntries)
		}
	}
	return nil
}

// portClassesOf fills a port array with the classes of the elementary
// intervals that the rules' ranges cut 0..65535 into, and returns for each
// rule (by rank) the classes within its range.
func (t *tables) portClassesOf(arr *[65536]uint32, get func(*Rule) PortRange) (map[int32][]uint32, []uint32) {
	cuts := []int{0, 65536}
	starts := map[int][]int32{}
	ends := map[int][]int32{}
	for i, r := range t.rules {
		if pr := get(r); !pr.Any() {
			cuts = append(cuts, int(pr.Lo), int(pr.Hi)+1)
			starts[int(pr.Lo)] = append(starts[int(pr.Lo)], int32(i))
			ends[int(pr.Hi)+1] = append(ends[int(pr.Hi)+1], int32(i))
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	next := uint32(0)
	in := newInterner(&next)
	in.id(nil) // class 0: no rule's range
	of := map[int32][]uint32{}
	active := map[int32]bool{}
	for k := 0; k+1 < len(cuts); k++ {
		lo, hi := cuts[k], cuts[k+1]
		for _, r := range ends[lo] {
			delete(active, r)
		}
		for _, r := range starts[lo] {
			active[r] = true
		}
		set := make([]int32, 0, len(active))
		for r := range active {
			set = append(set, r)
		}
		slices.Sort(set)
		t.work += len(set)
		c := in.id(set)
		for p := lo; p < hi; p++ {
			arr[p] = c
		}
	}
	for i, set := range in.sets {
		for _, r := range set {
			of[r] = append(of[r], in.list[i])
		}
	}
	return of, in.list
}

// portClasses computes (proto, sport class, dport class) -> port class for
// rules with ports, and for each rule the port classes it belongs to.
func (t *tables) portClasses() (map[int32][]uint32, map[uint32]uint8, error) {
	var portRules []int32
	for i, r := range t.rules {
		if r.hasPorts() {
			portRules = append(portRules, int32(i))
		}
	}
	if len(portRules) == 0 {
		return nil, nil, nil
	}
	t.havePorts = true
	sOf, sAll := t.portClassesOf(&t.sport, func(r *Rule) PortRange { return r.SPort })
	dOf, dAll := t.portClassesOf(&t.dport, func(r *Rule) PortRange { return r.DPort })
	sets := map[[3]uint32][]int32{}
	for _, i := range portRules {
		r := t.rules[i]
		ss, ds := sOf[i], dOf[i]
		if r.SPort.Any() {
			ss = sAll
		}
		if r.DPort.Any() {
			ds = dAll
		}
		for _, p := range r.protos() {
			if err := t.spend(len(ss) * len(ds)); err != nil {
				return nil, nil, err
			}
			for _, a := range ss {
				for _, b := range ds {
					k := [3]uint32{uint32(p), a, b}
					sets[k] = append(sets[k], i)
				}
			}
		}
		if len(sets) > maxEntries {
			return nil, nil, fmt.Errorf("rule set needs more than %d port classes: use fewer distinct port ranges", maxEntries)
		}
	}
	next := uint32(1)
	in := newInterner(&next)
	pcOfRule := map[int32][]uint32{}
	pcProto := map[uint32]uint8{}
	for k, set := range sets {
		// The protocol is part of the class, so each class has one.
		key := append([]int32{int32(k[0])}, set...)
		id := in.id(key)
		t.ports[k] = id
		if _, seen := pcProto[id]; !seen {
			pcProto[id] = uint8(k[0])
			for _, r := range set {
				pcOfRule[r] = append(pcOfRule[r], id)
			}
		}
	}
	return pcOfRule, pcProto, nil
}

// matchTable gives, for each address class, the best rule of each port
// class, of each protocol without ports and of no protocol. Entries that the
// fallbacks already answer are left out.
func (t *tables) matchTable(acs *interner, pcOfRule map[int32][]uint32, pcProto map[uint32]uint8) error {
	for i, set := range acs.sets {
		ac := acs.list[i]
		bestAny := int32(-1)
		bestProto := map[uint8]int32{}
		for _, r := range set {
			rule := t.rules[r]
			switch {
			case rule.hasPorts():
			case rule.Proto == 0:
				if bestAny < 0 {
					bestAny = r
				}
			default:
				if _, ok := bestProto[rule.Proto]; !ok && bestAny < 0 {
					bestProto[rule.Proto] = r
				}
			}
		}
		info := &acInfo{set: set, any: bestAny, hasProto: len(bestProto) > 0}
		t.acs[ac] = info
		for p, r := range bestProto {
			t.matches[[2]uint32{ac, pcProtoBase | uint32(p)}] = r
		}
		for _, r := range set {
			if !t.rules[r].hasPorts() {
				continue
			}
			pcs := pcOfRule[r]
			if err := t.spend(len(pcs)); err != nil {
				return err
			}
			for _, pc := range pcs {
				lim, ok := bestProto[pcProto[pc]]
				if !ok {
					lim = bestAny
				}
				if lim >= 0 && lim < r {
					continue
				}
				k := [2]uint32{ac, pc}
				if _, taken := t.matches[k]; !taken {
					t.matches[k] = r
					info.hasPorts = true
				}
			}
		}
		if len(t.matches) > maxEntries {
			return fmt.Errorf("rule set needs more than %d match entries", maxEntries)
		}
	}
	return nil
}
