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
	"github.com/bpfkit/bpfkit/pkg/tool"
)

// Tool describes xdp to its command, to `bpfkit check` and to serve.
var Tool = tool.Descriptor{
	Name:    "xdp",
	Kind:    tool.Sampler,
	Summary: "Filter packets at the NIC: CIDR, protocol and port rules, redirect, live counters",
	Spec:    loadXdpFilter,
	Hooks:   loader.Options{},
}

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
	PolicyDeny  = Policy(xdpFilterXdpfPolicyXDPF_POLICY_DENY)  // rules say what to drop; the rest passes
	PolicyAllow = Policy(xdpFilterXdpfPolicyXDPF_POLICY_ALLOW) // rules say what to let through; the rest is dropped
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
	// Guard is the safety check Attach applies to the policy and rules on
	// the interface; its Warn also gets notes (stale state replaced).
	Guard Guard
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

	coll  *ebpf.Collection // owns the maps (opened from pins) and, once loaded, the programs
	maps  xdpFilterMaps    // coll's maps
	prog  *ebpf.Program
	link  link.Link
	state *ebpf.Map // pinState
	dir   string    // pin directory, when pinned
}

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
func Load(opts Options) (*Filter, error) { return loadChecked(opts, nil) }

// loadChecked is Load with a check of the compiled rule set before anything is
// loaded into the kernel.
func loadChecked(opts Options, check func(rules []Rule, t *tables) error) (_ *Filter, err error) {
	if err := preflight(); err != nil {
		return nil, err
	}
	rules, next, err := assignIDs(opts.Rules, 1)
	if err != nil {
		return nil, err
	}
	t, err := compile(rules)
	if err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(rules, t); err != nil {
			return nil, err
		}
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
	f := &Filter{coll: coll, Policy: opts.Policy}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	var progs xdpFilterPrograms
	if err := errors.Join(loader.AssignCollection(coll, &f.maps), loader.AssignCollection(coll, &progs)); err != nil {
		return nil, err
	}
	f.prog = progs.XdpFilter
	if f.state, err = ebpf.NewMap(stateSpec()); err != nil {
		return nil, fmt.Errorf("create the filter's state map: %w", err)
	}
	if err := f.writeState(pinState{NextID: next}); err != nil {
		return nil, err
	}
	if err := f.write(t, rules, ifindexes, nil); err != nil {
		return nil, err
	}
	return f, nil
}

// loaderExplain reuses the loader's one-line errors.
func loaderExplain(what string, err error, debug bool) error {
	return loader.Explain(what, err, debug)
}

// PinDir is where the filter of iface in the current network namespace
// keeps its state.
func PinDir(iface string) (string, error) {
	if err := ValidIface(iface); err != nil {
		return "", err
	}
	ino, _, err := netnsID()
	if err != nil {
		return "", err
	}
	return filepath.Join(PinRoot, fmt.Sprintf("%d-%s", ino, pinName.Replace(iface))), nil
}

// bpffs refuses names with a dot, which interface names may have (VLANs
// such as eth0.100): they are written %2e in pin directory names.
var (
	pinName   = strings.NewReplacer("%", "%25", ".", "%2e")
	unpinName = strings.NewReplacer("%25", "%", "%2e", ".")
)

// lookupIface finds an interface by name in the current namespace.
func lookupIface(name string) (netlink.Link, error) {
	if err := ValidIface(name); err != nil {
		return nil, err
	}
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
	if err := ValidIface(iface); err != nil {
		return nil, err
	}
	// Before preflight: lifting the memlock limit fails first for a user
	// with capabilities on kernels before 5.11.
	if opts.Pin {
		if err := requireRoot(); err != nil {
			return nil, err
		}
	}
	if err := preflight(); err != nil {
		return nil, err
	}
	l, err := lookupIface(iface)
	if err != nil {
		return nil, err
	}
	var dir string
	if opts.Pin {
		if err := checkPrivateMounts(); err != nil {
			return nil, err
		}
		if err := loader.EnsureBPFFS(); err != nil {
			return nil, err
		}
		if err := makePinTree(); err != nil {
			return nil, err
		}
		if dir, err = PinDir(iface); err != nil {
			return nil, err
		}
		if err := replaceStale(dir, iface, opts.Guard); err != nil {
			return nil, err
		}
	}
	if prog, ok := attachedProgram(l); ok {
		if pid := foregroundHolder(l); pid != 0 {
			return nil, fmt.Errorf("%s is held by `bpfkit xdp run` (pid %d) in the foreground: stop it first (Ctrl-C there, or kill %d)", iface, pid, pid)
		}
		return nil, fmt.Errorf("%s already has the XDP program %s: detach it first (`bpfkit xdp unload %s` if bpfkit put it there, else `ip link set dev %s xdp off`)", iface, prog, iface, iface)
	}
	f, err := loadChecked(opts, func(rules []Rule, t *tables) error {
		return opts.Guard.check(hazards(iface, opts.Policy, true, nil, rules, t))
	})
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
	st, err := f.readState()
	if err != nil {
		return nil, err
	}
	if st.NetnsIno, st.NetnsCookie, err = netnsID(); err != nil {
		return nil, err
	}
	st.Ifindex = uint32(f.Ifindex)
	if info, err := f.prog.Info(); err == nil {
		id, _ := info.ID()
		st.ProgID = uint32(id)
	}
	if err := f.writeState(st); err != nil {
		return nil, err
	}
	if opts.Pin {
		if err := f.pin(dir); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// replaceStale removes the state in dir if it is stale, with a note, and
// refuses if it is true.
func replaceStale(dir, iface string, g Guard) error {
	exists, err := trustPinTree(dir)
	if err != nil || !exists {
		return err
	}
	f, err := openDir(dir, iface)
	if err != nil {
		return err
	}
	defer f.Close()
	unlock, err := f.lock()
	if err != nil {
		if errors.Is(err, errUnloaded) {
			return nil
		}
		return err
	}
	defer unlock()
	err = f.verify()
	if err == nil {
		return fmt.Errorf("bpfkit already has a filter on %s: `bpfkit xdp unload %s` first", iface, iface)
	}
	if !IsStale(err) {
		return err
	}
	g.warn("note: " + err.Error() + "; replacing it")
	return f.Unload()
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

// pin puts the link and maps under dir, readable by root only: into a
// directory of its own first, renamed to dir once complete, so another
// invocation sees all of the state or none.
func (f *Filter) pin(dir string) error {
	// Replacing stale state may have removed the emptied tree.
	if err := makePinTree(); err != nil {
		return err
	}
	tmp := filepath.Join(PinRoot, fmt.Sprintf("new+%d+%s", os.Getpid(), filepath.Base(dir)))
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	f.dir = tmp
	for name, m := range f.coll.Maps {
		if err := m.Pin(filepath.Join(tmp, name)); err != nil {
			return fmt.Errorf("pin map %s: %w", name, err)
		}
	}
	if err := f.state.Pin(filepath.Join(tmp, "state")); err != nil {
		return fmt.Errorf("pin the filter's state: %w", err)
	}
	if err := f.link.Pin(filepath.Join(tmp, "link")); err != nil {
		return fmt.Errorf("pin the XDP link: %w", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("bpfkit already has a filter on %s: `bpfkit xdp unload %s` first", f.Iface, f.Iface)
		}
		return fmt.Errorf("move the pinned state to %s: %w", dir, err)
	}
	f.dir = dir
	return nil
}

// Open returns the pinned filter of iface in this network namespace,
// refusing state that is stale (see verify). It verifies under the lock,
// so that an unload under way is not taken for stale state; a change
// verifies again under its own lock.
func Open(iface string) (*Filter, error) {
	f, err := openIface(iface)
	if err != nil {
		return nil, err
	}
	unlock, err := f.lock()
	if err == nil {
		err = f.verify()
		unlock()
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// openIface opens the pinned state of iface in this network namespace,
// stale or not.
func openIface(iface string) (*Filter, error) {
	if err := ValidIface(iface); err != nil {
		return nil, err
	}
	if err := requireRoot(); err != nil {
		return nil, err
	}
	if err := preflight(); err != nil {
		return nil, err
	}
	dir, err := PinDir(iface)
	if err != nil {
		return nil, err
	}
	exists, err := trustPinTree(dir)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, noFilter(iface)
	}
	return openDir(dir, iface)
}

// noFilter says that bpfkit has no pinned filter on iface, and who holds
// it when `bpfkit xdp run` does.
func noFilter(iface string) error {
	if l, err := netlink.LinkByName(iface); err == nil {
		if pid := foregroundHolder(l); pid != 0 {
			return fmt.Errorf("%s is held by `bpfkit xdp run` (pid %d) in the foreground, which keeps no state: stop it with Ctrl-C there, or kill %d", iface, pid, pid)
		}
	}
	return fmt.Errorf("bpfkit has no filter on %s in this network namespace: `bpfkit xdp load %s` first", iface, iface)
}

// foregroundHolder is the pid of the `bpfkit xdp run` that holds l, 0 if
// none does.
func foregroundHolder(l netlink.Link) int {
	fg, err := foreground(nil)
	if err != nil {
		return 0
	}
	for _, st := range fg {
		if st.Ifindex == l.Attrs().Index {
			return st.PID
		}
	}
	return 0
}

func openDir(dir, iface string) (_ *Filter, err error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, noFilter(iface)
	}
	// An unload holds the lock exclusively while it removes the pins.
	unlock, err := lockDir(dir, iface, unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer unlock()
	spec, err := loadXdpFilter()
	if err != nil {
		return nil, err
	}
	f := &Filter{Iface: iface, coll: &ebpf.Collection{Maps: map[string]*ebpf.Map{}}, dir: dir}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	damaged := func(what string, err error) error {
		return fmt.Errorf("open the pinned %s (the state in %s is damaged: `bpfkit xdp unload %s`): %w", what, dir, iface, err)
	}
	for name := range spec.Maps {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
		if err != nil {
			return nil, damaged("map "+name, err)
		}
		f.coll.Maps[name] = m
	}
	if err := loader.AssignCollection(f.coll, &f.maps); err != nil {
		return nil, err
	}
	if f.state, err = ebpf.LoadPinnedMap(filepath.Join(dir, "state"), nil); err != nil {
		return nil, damaged("state", err)
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

// errUnloaded says that the filter went away while waiting for its lock.
var errUnloaded = errors.New("unloaded meanwhile")

// lock takes the lock of a pinned filter that every change and unload
// take, and checks that the filter is still there once it has it: an
// unload that ran meanwhile removed its directory.
func (f *Filter) lock() (unlock func(), err error) {
	if f.dir == "" {
		return func() {}, nil
	}
	return lockDir(f.dir, f.Iface, unix.LOCK_EX)
}

// lockDir flocks a pin directory (how: LOCK_EX to change or remove it,
// LOCK_SH to open its pins) and checks that it is still there.
func lockDir(dir, iface string, how int) (unlock func(), err error) {
	fd, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("the filter on %s was %w: nothing changed", iface, errUnloaded)
	}
	if err := unix.Flock(int(fd.Fd()), how); err != nil {
		fd.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	var held, now unix.Stat_t
	if unix.Fstat(int(fd.Fd()), &held) != nil || unix.Lstat(dir, &now) != nil || held.Ino != now.Ino || held.Dev != now.Dev {
		fd.Close()
		return nil, fmt.Errorf("the filter on %s was %w: nothing changed", iface, errUnloaded)
	}
	return func() { fd.Close() }, nil
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
	}
	if f.state != nil {
		f.state.Close()
		f.state = nil
	}
	f.maps = xdpFilterMaps{}
	return errors.Join(errs...)
}

// Unload detaches the filter and removes its pinned state. The caller
// holds the lock of a pinned filter (UnloadIface takes it).
func (f *Filter) Unload() error {
	var errs []error
	if f.link != nil {
		// Detach now: dropping the last reference (the pin) only detaches
		// once the kernel has freed the pin's inode, some time later.
		if err := f.link.Detach(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
			errs = append(errs, err)
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

// UnloadIface detaches the filter of iface in this network namespace and
// removes its state, under the lock rule changes take; stale state is
// removed too, and returned as an error IsStale reports, after removal.
func UnloadIface(iface string) (stale error, err error) {
	f, err := openIface(iface)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	unlock, err := f.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := f.verify(); err != nil {
		if !IsStale(err) {
			return nil, err
		}
		stale = err
	}
	return stale, f.Unload()
}

// Status is one interface bpfkit filters.
type Status struct {
	Iface    string `json:"iface"`
	Netns    uint64 `json:"netns"`
	Mode     Mode   `json:"mode,omitempty"`
	Policy   string `json:"policy,omitempty"`
	Rules    int    `json:"rules"`
	Attached bool   `json:"attached"` // the filter's program is on its interface
	// State is "pinned", "foreground" (`bpfkit xdp run`, PID) or
	// "stale: why".
	State   string `json:"state"`
	PID     int    `json:"pid,omitempty"`
	Ifindex int    `json:"ifindex,omitempty"`
	ProgID  uint32 `json:"prog_id,omitempty"`
	Dir     string `json:"dir,omitempty"`
}

// List returns every pinned filter, in every network namespace, and the
// foreground filters (`bpfkit xdp run`) of this one. Each pinned filter is
// verified in its own network namespace.
func List() ([]Status, error) {
	if err := requireRoot(); err != nil {
		return nil, err
	}
	if err := preflight(); err != nil {
		return nil, err
	}
	exists, err := trustPinTree(PinRoot)
	if err != nil || !exists {
		if err == nil {
			return foreground(nil)
		}
		return nil, err
	}
	entries, err := os.ReadDir(PinRoot)
	if err != nil {
		return nil, err
	}
	here, _, err := netnsID()
	if err != nil {
		return nil, err
	}
	var out []Status
	pinned := map[uint32]bool{}
	for _, e := range entries {
		ns, iface, ok := strings.Cut(e.Name(), "-")
		iface = unpinName.Replace(iface)
		netnsIno, err := strconv.ParseUint(ns, 10, 64)
		if !ok || err != nil || ValidIface(iface) != nil {
			continue // a load under way (new+PID+...), or not bpfkit's
		}
		st := Status{Iface: iface, Netns: netnsIno, Dir: filepath.Join(PinRoot, e.Name()), State: "pinned"}
		if err := checkOwned(st.Dir); err != nil {
			return nil, err
		}
		f, err := openDir(st.Dir, iface)
		if errors.Is(err, errUnloaded) {
			continue
		}
		if err != nil {
			st.State = "damaged: " + err.Error()
			out = append(out, st)
			continue
		}
		st.Mode, st.Policy = f.Mode, f.Policy.String()
		if rules, err := f.Rules(); err == nil {
			st.Rules = len(rules)
		}
		if s, err := f.readState(); err == nil {
			st.ProgID = s.ProgID
			pinned[s.ProgID] = true
		}
		var verr error
		if st.Netns == here {
			verr = f.verify()
		} else if found, err := inNetns(st.Netns, f.verify); !found {
			verr = &staleError{iface: iface, why: "its network namespace is gone"}
		} else {
			verr = err
		}
		switch {
		case verr == nil:
			st.Attached, st.Ifindex = true, f.Ifindex
		case IsStale(verr):
			var se *staleError
			errors.As(verr, &se)
			st.State = "stale: " + se.why
		default:
			st.State = "unknown: " + verr.Error()
		}
		f.Close()
		out = append(out, st)
	}
	fg, err := foreground(pinned)
	return append(out, fg...), err
}

// UnloadAll detaches every pinned filter, in every network namespace, and
// removes all of bpfkit's XDP state.
func UnloadAll() ([]Status, error) {
	all, err := List()
	if err != nil {
		return nil, err
	}
	var errs []error
	var gone []Status
	for _, st := range all {
		if st.Dir == "" {
			continue // foreground: its process holds it
		}
		gone = append(gone, st)
		f, err := openDir(st.Dir, st.Iface)
		if err == nil {
			var unlock func()
			if unlock, err = f.lock(); err == nil {
				err = f.Unload()
				unlock()
			} else if errors.Is(err, errUnloaded) {
				err = nil
			}
			f.Close()
		} else {
			err = os.RemoveAll(st.Dir)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", st.Iface, err))
		}
	}
	return gone, errors.Join(errs...)
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

// assignIDs validates rules and gives the rules without an id the ids
// from next on; it returns the rules and the next id after them. Ids are
// never reused in a filter's life, so "lower id wins" means "older wins".
func assignIDs(rules []Rule, next uint32) ([]Rule, uint32, error) {
	rules = slices.Clone(rules)
	used := map[uint32]bool{}
	for i := range rules {
		if err := rules[i].Validate(); err != nil {
			return nil, 0, fmt.Errorf("rule %d: %w", i+1, err)
		}
		if id := rules[i].ID; id != 0 {
			if used[id] || id > MaxRules {
				return nil, 0, fmt.Errorf("rule id %d is used twice or above %d", id, MaxRules)
			}
			used[id] = true
			next = max(next, id+1)
		}
	}
	if len(rules) > MaxRules {
		return nil, 0, fmt.Errorf("%d rules: at most %d fit", len(rules), MaxRules)
	}
	for i := range rules {
		if rules[i].ID != 0 {
			continue
		}
		if next > MaxRules {
			return nil, 0, fmt.Errorf("rule ids are used up: ids are never reused, and this filter has given all %d: unload it and load it again", MaxRules)
		}
		rules[i].ID = next
		next++
	}
	return rules, next, nil
}
