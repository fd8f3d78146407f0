// Package xdp is bpfkit's XDP filter: CIDR, protocol and port rules at the
// NIC with drop, pass and redirect, per-rule counters, and rule changes
// that take effect atomically without reloading the program.
//
// A Filter is loaded (Load), attached to an interface (Attach), optionally
// pinned under /sys/fs/bpf/bpfkit/xdp so that separate invocations share it
// (Open), and detached with Close (foreground) or Unload (pinned).
package xdp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/pkg/loader"
)

// Mode is how the program is attached.
type Mode string

const (
	ModeAuto    Mode = "auto"    // native, else generic
	ModeNative  Mode = "native"  // in the driver
	ModeGeneric Mode = "generic" // after the skb is built; works everywhere
)

// ParseMode accepts auto, native or generic.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAuto, ModeNative, ModeGeneric:
		return m, nil
	}
	return "", fmt.Errorf("mode %q: use auto, native or generic", s)
}

// Policy is what happens to packets that no rule matches.
type Policy uint32

const (
	PolicyDeny  Policy = 0 // rules say what to drop; the rest passes
	PolicyAllow Policy = 1 // rules say what to let through; the rest is dropped
)

// ParsePolicy accepts deny or allow.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "deny", "":
		return PolicyDeny, nil
	case "allow":
		return PolicyAllow, nil
	}
	return 0, fmt.Errorf("policy %q: use deny (pass unmatched packets) or allow (drop them)", s)
}

func (p Policy) String() string {
	if p == PolicyAllow {
		return "allow"
	}
	return "deny"
}

// Options configure Load and Attach.
type Options struct {
	Mode   Mode   // "" is auto
	Policy Policy // default deny
	Rules  []Rule // the initial rule set
	// Pin keeps the filter attached after the process exits, with its state
	// under PinRoot, for Open, Status and Unload.
	Pin   bool
	Debug bool // full verifier log on rejection
}

// PinRoot holds the pinned state of every filter, one directory per
// interface named <netns inode>-<interface>.
const PinRoot = loader.BPFFSPath + "/bpfkit/xdp"

// Filter is a loaded XDP filter.
type Filter struct {
	Iface   string // empty when only loaded
	Ifindex int
	Mode    Mode // native or generic, once attached
	Policy  Policy

	coll *ebpf.Collection
	maps map[string]*ebpf.Map
	prog *ebpf.Program
	link link.Link
	dir  string // pin directory, when pinned
}

// Spec returns the BPF objects of the filter, for `bpfkit check`.
func Spec() (*ebpf.CollectionSpec, error) { return loadXdpFilter() }

// Program is the filter's XDP program (for Program.Run in tests and
// benchmarks); nil for a filter from Open.
func (f *Filter) Program() *ebpf.Program { return f.prog }

func preflight() error {
	if err := loader.CheckPrivileges(); err != nil {
		return err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("lift the memlock limit: %w", err)
	}
	return nil
}

// Load loads the program and its maps with opts.Rules, without attaching.
func Load(opts Options) (_ *Filter, err error) {
	if err := preflight(); err != nil {
		return nil, err
	}
	rules, err := prepare(opts.Rules)
	if err != nil {
		return nil, err
	}
	t, err := compile(rules)
	if err != nil {
		return nil, err
	}
	ifindexes, err := redirectTargets(rules)
	if err != nil {
		return nil, err
	}
	spec, err := loadXdpFilter()
	if err != nil {
		return nil, err
	}
	collOpts := ebpf.CollectionOptions{}
	if opts.Debug {
		collOpts.Programs.LogLevel = ebpf.LogLevelInstruction
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, collOpts)
	if err != nil {
		return nil, loaderExplain("load the XDP filter", err, opts.Debug)
	}
	f := &Filter{coll: coll, maps: coll.Maps, prog: coll.Programs["xdp_filter"], Policy: opts.Policy}
	defer func() {
		if err != nil {
			f.coll.Close()
		}
	}()
	if err := f.write(t, rules, ifindexes, nil); err != nil {
		return nil, err
	}
	return f, nil
}

// loaderExplain reuses the loader's one-line errors.
func loaderExplain(what string, err error, debug bool) error {
	return loader.Explain(what, err, debug)
}

// netnsInode identifies the network namespace the process is in.
func netnsInode() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, fmt.Errorf("find the network namespace: %w", err)
	}
	return st.Ino, nil
}

// PinDir is where the filter of iface in the current network namespace
// keeps its state.
func PinDir(iface string) (string, error) {
	ino, err := netnsInode()
	if err != nil {
		return "", err
	}
	return filepath.Join(PinRoot, fmt.Sprintf("%d-%s", ino, iface)), nil
}

// lookupIface finds an interface by name in the current namespace.
func lookupIface(name string) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("interface %q not found (`ip link` lists the interfaces)", name)
		}
		return nil, fmt.Errorf("look up interface %q: %w", name, err)
	}
	return l, nil
}

// attachedProgram describes the XDP program on an interface, if any.
func attachedProgram(l netlink.Link) (string, bool) {
	x := l.Attrs().Xdp
	if x == nil || (!x.Attached && x.ProgId == 0) {
		return "", false
	}
	name := "?"
	if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(x.ProgId)); err == nil {
		if info, err := p.Info(); err == nil && info.Name != "" {
			name = info.Name
		}
		p.Close()
	}
	return fmt.Sprintf("%q (id %d)", name, x.ProgId), true
}

// checkPrivateMounts refuses to pin into a bpffs that would vanish with
// this process: `ip netns exec` gives its command a private mount namespace
// with a fresh /sys, hiding the machine's /sys/fs/bpf.
func checkPrivateMounts() error {
	var st unix.Statfs_t
	if err := unix.Statfs(loader.BPFFSPath, &st); err == nil && int64(st.Type) == unix.BPF_FS_MAGIC {
		return nil
	}
	if !privateSysfs() {
		return nil
	}
	return fmt.Errorf("%s is not mounted in this private mount namespace (as under `ip netns exec`), so pinned state would vanish when bpfkit exits: "+
		"enter the namespace with `nsenter --net=/run/netns/NAME bpfkit ...` instead, or use `bpfkit xdp run`", loader.BPFFSPath)
}

// privateSysfs tells whether this process runs in a mount namespace of its
// own with a /sys of its own: a different mount namespace than PID 1's, or,
// where PID 1's cannot be read (sandboxes), a /sys mounted the way
// `ip netns exec` mounts it (sysfs whose source is the network namespace's
// name, /run/netns/NAME).
func privateSysfs() bool {
	var self, init unix.Stat_t
	if unix.Stat("/proc/self/ns/mnt", &self) == nil && unix.Stat("/proc/1/ns/mnt", &init) == nil {
		return self.Ino != init.Ino
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(mounts)) {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER
		fields := strings.Fields(line)
		if len(fields) < 5 || fields[4] != "/sys" {
			continue
		}
		i := slices.Index(fields, "-")
		if i < 0 || i+2 >= len(fields) || fields[i+1] != "sysfs" {
			continue
		}
		if src := fields[i+2]; !strings.Contains(src, "/") {
			if _, err := os.Stat("/run/netns/" + src); err == nil {
				return true
			}
		}
	}
	return false
}

// Attach loads the filter and attaches it to iface. Nothing stays attached
// or pinned when it fails.
func Attach(iface string, opts Options) (_ *Filter, err error) {
	if err := preflight(); err != nil {
		return nil, err
	}
	l, err := lookupIface(iface)
	if err != nil {
		return nil, err
	}
	if prog, ok := attachedProgram(l); ok {
		return nil, fmt.Errorf("%s already has the XDP program %s: detach it first (`bpfkit xdp unload %s` if bpfkit put it there, else `ip link set dev %s xdp off`)", iface, prog, iface, iface)
	}
	var dir string
	if opts.Pin {
		if err := checkPrivateMounts(); err != nil {
			return nil, err
		}
		if err := loader.EnsureBPFFS(); err != nil {
			return nil, err
		}
		if dir, err = PinDir(iface); err != nil {
			return nil, err
		}
		if _, err := os.Stat(dir); err == nil {
			return nil, fmt.Errorf("bpfkit already has state for %s in %s: `bpfkit xdp unload %s` first", iface, dir, iface)
		}
	}
	f, err := Load(opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Unload()
		}
	}()
	f.Iface, f.Ifindex = iface, l.Attrs().Index
	if err := f.attach(opts.Mode); err != nil {
		return nil, err
	}
	if err := f.setConfig(func(c *xdpFilterXdpfConfig) { c.Mode = modeNumber(f.Mode) }); err != nil {
		return nil, err
	}
	if opts.Pin {
		if err := f.pin(dir); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func modeNumber(m Mode) uint32 {
	if m == ModeGeneric {
		return 2
	}
	return 1
}

func (f *Filter) attach(mode Mode) error {
	try := func(flags link.XDPAttachFlags) error {
		l, err := link.AttachXDP(link.XDPOptions{Program: f.prog, Interface: f.Ifindex, Flags: flags})
		if err != nil {
			return err
		}
		f.link = l
		return nil
	}
	switch mode {
	case ModeNative:
		f.Mode = ModeNative
		if err := try(link.XDPDriverMode); err != nil {
			return loaderExplain(fmt.Sprintf("attach to %s in native mode (try --mode generic)", f.Iface), err, false)
		}
	case ModeGeneric:
		f.Mode = ModeGeneric
		if err := try(link.XDPGenericMode); err != nil {
			return loaderExplain(fmt.Sprintf("attach to %s in generic mode", f.Iface), err, false)
		}
	default:
		f.Mode = ModeNative
		if err := try(link.XDPDriverMode); err != nil {
			f.Mode = ModeGeneric
			if err2 := try(link.XDPGenericMode); err2 != nil {
				return loaderExplain(fmt.Sprintf("attach to %s (native: %v; generic)", f.Iface, err), err2, false)
			}
		}
	}
	return nil
}

// pin puts the link and maps under dir, readable by root only.
func (f *Filter) pin(dir string) error {
	if err := os.MkdirAll(PinRoot, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", PinRoot, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f.dir = dir
	for name, m := range f.maps {
		if err := m.Pin(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("pin map %s: %w", name, err)
		}
	}
	if err := f.link.Pin(filepath.Join(dir, "link")); err != nil {
		return fmt.Errorf("pin the XDP link: %w", err)
	}
	return nil
}

// Open returns the pinned filter of iface in this network namespace.
func Open(iface string) (*Filter, error) {
	if err := preflight(); err != nil {
		return nil, err
	}
	dir, err := PinDir(iface)
	if err != nil {
		return nil, err
	}
	return openDir(dir, iface)
}

func openDir(dir, iface string) (_ *Filter, err error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("bpfkit has no filter on %s in this network namespace: `bpfkit xdp load %s` first", iface, iface)
	}
	spec, err := loadXdpFilter()
	if err != nil {
		return nil, err
	}
	f := &Filter{Iface: iface, maps: map[string]*ebpf.Map{}, dir: dir}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	for name := range spec.Maps {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
		if err != nil {
			return nil, fmt.Errorf("open the pinned map %s (the state in %s is damaged: `bpfkit xdp unload %s`): %w", name, dir, iface, err)
		}
		f.maps[name] = m
	}
	if l, err := link.LoadPinnedLink(filepath.Join(dir, "link"), nil); err == nil {
		f.link = l
		if info, err := l.Info(); err == nil && info.XDP() != nil {
			f.Ifindex = int(info.XDP().Ifindex)
		}
	}
	cfg, err := f.config()
	if err != nil {
		return nil, err
	}
	f.Policy = Policy(cfg.Policy)
	f.Mode = ModeNative
	if cfg.Mode == 2 {
		f.Mode = ModeGeneric
	}
	return f, nil
}

// Pinned reports whether the filter outlives the process.
func (f *Filter) Pinned() bool { return f.dir != "" }

// Close releases the filter's descriptors. A pinned filter stays attached;
// one that is not pinned is detached.
func (f *Filter) Close() error {
	var errs []error
	if f.link != nil {
		errs = append(errs, f.link.Close())
		f.link = nil
	}
	if f.coll != nil {
		f.coll.Close()
		f.coll = nil
	} else {
		for _, m := range f.maps {
			m.Close()
		}
	}
	f.maps = nil
	return errors.Join(errs...)
}

// Unload detaches the filter and removes its pinned state.
func (f *Filter) Unload() error {
	var errs []error
	if f.link != nil {
		// Detach now: dropping the last reference (the pin) only detaches
		// once the kernel has freed the pin's inode, some time later.
		if err := f.link.Detach(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
			errs = append(errs, err)
		}
		if f.dir != "" {
			if err := f.link.Unpin(); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	for _, m := range f.maps {
		if m.IsPinned() {
			errs = append(errs, m.Unpin())
		}
	}
	errs = append(errs, f.Close())
	if f.dir != "" {
		if err := os.RemoveAll(f.dir); err != nil {
			errs = append(errs, err)
		}
		f.dir = ""
		// Leave no empty directories behind either.
		os.Remove(PinRoot)
		os.Remove(filepath.Dir(PinRoot))
	}
	return errors.Join(errs...)
}

// Status is one interface bpfkit filters.
type Status struct {
	Iface    string
	Netns    uint64
	Mode     Mode
	Policy   Policy
	Rules    int
	Attached bool // the pinned link still holds the program on the interface
	Dir      string
}

// List returns every pinned filter, in every network namespace.
func List() ([]Status, error) {
	if err := preflight(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(PinRoot)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Status
	for _, e := range entries {
		ns, iface, ok := strings.Cut(e.Name(), "-")
		if !ok {
			continue
		}
		st := Status{Iface: iface, Dir: filepath.Join(PinRoot, e.Name())}
		st.Netns, _ = strconv.ParseUint(ns, 10, 64)
		f, err := openDir(st.Dir, iface)
		if err == nil {
			st.Mode, st.Policy, st.Attached = f.Mode, f.Policy, f.link != nil
			if rules, err := f.Rules(); err == nil {
				st.Rules = len(rules)
			}
			f.Close()
		}
		out = append(out, st)
	}
	return out, nil
}

// UnloadAll detaches every pinned filter, in every network namespace, and
// removes all of bpfkit's XDP state.
func UnloadAll() ([]Status, error) {
	all, err := List()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, st := range all {
		f, err := openDir(st.Dir, st.Iface)
		if err == nil {
			err = f.Unload()
		} else {
			err = os.RemoveAll(st.Dir)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", st.Iface, err))
		}
	}
	return all, errors.Join(errs...)
}

// redirectTargets resolves the interfaces of redirect rules.
func redirectTargets(rules []Rule) (map[string]int, error) {
	out := map[string]int{}
	for _, r := range rules {
		if r.Action.Kind != Redirect {
			continue
		}
		if _, ok := out[r.Action.Iface]; ok {
			continue
		}
		l, err := lookupIface(r.Action.Iface)
		if err != nil {
			return nil, fmt.Errorf("redirect target: %w", err)
		}
		out[r.Action.Iface] = l.Attrs().Index
	}
	return out, nil
}

// prepare validates rules and gives ids to those without one.
func prepare(rules []Rule) ([]Rule, error) {
	rules = slices.Clone(rules)
	used := map[uint32]bool{}
	for i := range rules {
		if err := rules[i].Validate(); err != nil {
			return nil, fmt.Errorf("rule %d: %w", i+1, err)
		}
		if id := rules[i].ID; id != 0 {
			if used[id] || id > MaxRules {
				return nil, fmt.Errorf("rule id %d is used twice or above %d", id, MaxRules)
			}
			used[id] = true
		}
	}
	next := uint32(1)
	for i := range rules {
		if rules[i].ID != 0 {
			continue
		}
		for used[next] {
			next++
		}
		if next > MaxRules {
			return nil, fmt.Errorf("%d rules: at most %d fit", len(rules), MaxRules)
		}
		rules[i].ID = next
		used[next] = true
	}
	return rules, nil
}
