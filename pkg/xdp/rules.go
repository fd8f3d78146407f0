package xdp

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/pkg/loader"
)

// lock serialises rule changes of separate invocations on a pinned filter.
func (f *Filter) lock() (unlock func(), err error) {
	if f.dir == "" {
		return func() {}, nil
	}
	fd, err := os.Open(f.dir)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", f.dir, err)
	}
	if err := unix.Flock(int(fd.Fd()), unix.LOCK_EX); err != nil {
		fd.Close()
		return nil, fmt.Errorf("lock %s: %w", f.dir, err)
	}
	return func() { fd.Close() }, nil
}

func ifname(index int) string {
	if l, err := netlink.LinkByIndex(index); err == nil {
		return l.Attrs().Name
	}
	return fmt.Sprintf("ifindex%d", index)
}

// Rules returns the rule set, by id.
func (f *Filter) Rules() ([]Rule, error) {
	var out []Rule
	if err := loader.ReadAll(f.maps["rules"], func(id *uint32, rec *ruleRec) {
		out = append(out, decodeRule(*id, rec, ifname))
	}); err != nil {
		return nil, fmt.Errorf("read the rules: %w", err)
	}
	slices.SortFunc(out, func(a, b Rule) int { return int(a.ID) - int(b.ID) })
	return out, nil
}

// replace compiles rules and installs them in place of old.
func (f *Filter) replace(rules, old []Rule) error {
	t, err := compile(rules)
	if err != nil {
		return err
	}
	ifindexes, err := redirectTargets(rules)
	if err != nil {
		return err
	}
	return f.write(t, rules, ifindexes, old)
}

// AddRule adds a rule with the next free id and returns it.
func (f *Filter) AddRule(r Rule) (Rule, error) {
	unlock, err := f.lock()
	if err != nil {
		return r, err
	}
	defer unlock()
	old, err := f.Rules()
	if err != nil {
		return r, err
	}
	r.ID = 0
	rules, err := prepare(append(slices.Clone(old), r))
	if err != nil {
		return r, err
	}
	return rules[len(rules)-1], f.replace(rules, old)
}

// DeleteRule removes the rule with id.
func (f *Filter) DeleteRule(id uint32) error {
	unlock, err := f.lock()
	if err != nil {
		return err
	}
	defer unlock()
	old, err := f.Rules()
	if err != nil {
		return err
	}
	rules := slices.DeleteFunc(slices.Clone(old), func(r Rule) bool { return r.ID == id })
	if len(rules) == len(old) {
		return fmt.Errorf("no rule %d (`bpfkit xdp rule list %s` shows the ids)", id, f.Iface)
	}
	return f.replace(rules, old)
}

// ReplaceRules installs a whole new rule set atomically: packets see the
// old set or the new one. Rules get new ids from 1.
func (f *Filter) ReplaceRules(rules []Rule) error {
	unlock, err := f.lock()
	if err != nil {
		return err
	}
	defer unlock()
	old, err := f.Rules()
	if err != nil {
		return err
	}
	for i := range rules {
		rules[i].ID = 0
	}
	rules, err = prepare(rules)
	if err != nil {
		return err
	}
	// Counters of old rules must not carry over to new rules with their ids.
	if err := f.replace(rules, nil); err != nil {
		return err
	}
	keep := map[uint32]bool{}
	for _, r := range rules {
		keep[r.ID] = true
	}
	for _, r := range old {
		if !keep[r.ID] {
			if err := f.maps["rules"].Delete(r.ID); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("remove rule %d: %w", r.ID, err)
			}
		}
	}
	return nil
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
		if err := f.maps["rule_stats"].Lookup(r.ID, &per); err != nil {
			return s, fmt.Errorf("read the counters of rule %d: %w", r.ID, err)
		}
		s.Rules = append(s.Rules, RuleStats{Rule: r, Counter: sum(per)})
	}
	for i, dst := range []*Counter{&s.DefaultPass, &s.DefaultDrop, &s.Malformed, &s.NonIP} {
		if err := f.maps["stats"].Lookup(uint32(i), &per); err != nil {
			return s, fmt.Errorf("read the counters: %w", err)
		}
		*dst = sum(per)
	}
	return s, nil
}
