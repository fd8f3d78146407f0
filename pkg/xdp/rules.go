package xdp

import (
	"fmt"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/bpfkit/bpfkit/pkg/loader"
)

func ifname(index int) string {
	if l, err := netlink.LinkByIndex(index); err == nil {
		return l.Attrs().Name
	}
	return fmt.Sprintf("ifindex%d", index)
}

// Rules returns the rule set, by id.
func (f *Filter) Rules() ([]Rule, error) {
	var out []Rule
	if err := loader.ReadAll(f.maps.Rules, func(id *uint32, rec *ruleRec) {
		out = append(out, decodeRule(*id, rec, ifname))
	}); err != nil {
		return nil, fmt.Errorf("read the rules: %w", err)
	}
	slices.SortFunc(out, func(a, b Rule) int { return int(a.ID) - int(b.ID) })
	return out, nil
}

// Change edits a rule set: it gets the current rules and returns the new
// set, in which rules without an id are new.
type Change func(rules []Rule) ([]Rule, error)

// Apply is the one way to change the rules of a filter. Under the lock
// that every change and unload take, it checks that the state is not
// stale, reads the rules, applies change, compiles the result once, judges
// the result with g (the SSH session, the default route), and writes it.
// It returns the resulting rule set and the rules it added.
func (f *Filter) Apply(change Change, g Guard) (rules, added []Rule, err error) {
	unlock, err := f.lock()
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	if f.dir != "" {
		if err := f.verify(); err != nil {
			return nil, nil, err
		}
	}
	old, err := f.Rules()
	if err != nil {
		return nil, nil, err
	}
	changed, err := change(slices.Clone(old))
	if err != nil {
		return nil, nil, err
	}
	st, err := f.readState()
	if err != nil {
		return nil, nil, err
	}
	rules, next, err := assignIDs(changed, st.NextID)
	if err != nil {
		return nil, nil, err
	}
	t, err := compile(rules)
	if err != nil {
		return nil, nil, err
	}
	if err := g.check(hazards(f.Iface, f.Policy, false, old, rules, t)); err != nil {
		return nil, nil, err
	}
	for _, r := range rules {
		if r.ID >= st.NextID {
			added = append(added, r)
			g.duplicates(r, rules)
		}
	}
	ifindexes, err := redirectTargets(rules)
	if err != nil {
		return nil, nil, err
	}
	// The ids are taken before the tables change: even a change that fails
	// half way never gives them again.
	st.NextID = next
	if err := f.writeState(st); err != nil {
		return nil, nil, err
	}
	return rules, added, f.write(t, rules, ifindexes, old)
}

// AddRule adds a rule with the next id and returns it.
func (f *Filter) AddRule(r Rule, g Guard) (Rule, error) {
	r.ID = 0
	_, added, err := f.Apply(func(rules []Rule) ([]Rule, error) { return append(rules, r), nil }, g)
	if err != nil {
		return r, err
	}
	return added[0], nil
}

// DeleteRule removes the rule with id.
func (f *Filter) DeleteRule(id uint32, g Guard) error {
	_, _, err := f.Apply(func(rules []Rule) ([]Rule, error) {
		kept := slices.DeleteFunc(rules, func(r Rule) bool { return r.ID == id })
		if len(kept) == len(rules) {
			return nil, fmt.Errorf("no rule %d (`bpfkit xdp rule list %s` shows the ids)", id, f.Iface)
		}
		return kept, nil
	}, g)
	return err
}

// ReplaceRules installs a whole new rule set atomically: packets see the
// old set or the new one. The rules get new ids, and counters from zero.
func (f *Filter) ReplaceRules(rules []Rule, g Guard) error {
	_, _, err := f.Apply(func([]Rule) ([]Rule, error) {
		fresh := slices.Clone(rules)
		for i := range fresh {
			fresh[i].ID = 0
		}
		return fresh, nil
	}, g)
	return err
}

// Counter is packets and bytes.
type Counter struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// RuleStats is a rule with what it matched.
type RuleStats struct {
	Rule
	Counter
}

// Stats is what the filter saw, summed over CPUs.
type Stats struct {
	Rules       []RuleStats
	DefaultPass Counter // no rule matched, passed (deny policy)
	DefaultDrop Counter // no rule matched, dropped (allow policy)
	Malformed   Counter // truncated or malformed frames: dropped
	NonIP       Counter // neither IPv4 nor IPv6: passed
}

func sum(per []counter) Counter {
	var c Counter
	for _, p := range per {
		c.Packets += p.Packets
		c.Bytes += p.Bytes
	}
	return c
}

// Stats reads every counter.
func (f *Filter) Stats() (Stats, error) {
	var s Stats
	rules, err := f.Rules()
	if err != nil {
		return s, err
	}
	var per []counter
	for _, r := range rules {
		if err := f.maps.RuleStats.Lookup(r.ID, &per); err != nil {
			return s, fmt.Errorf("read the counters of rule %d: %w", r.ID, err)
		}
		s.Rules = append(s.Rules, RuleStats{Rule: r, Counter: sum(per)})
	}
	for i, dst := range []*Counter{&s.DefaultPass, &s.DefaultDrop, &s.Malformed, &s.NonIP} {
		if err := f.maps.Stats.Lookup(uint32(i), &per); err != nil {
			return s, fmt.Errorf("read the counters: %w", err)
		}
		*dst = sum(per)
	}
	return s, nil
}
