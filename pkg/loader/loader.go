package loader

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Names every tracer's BPF object shares (bpf/include/common.h).
const (
	eventsMap      = "events"
	lostMap        = "lost"
	wakeupBytesVar = "wakeup_bytes"
	// AttachedVar is a writable u64 global an object may declare: Load
	// sets it to CLOCK_MONOTONIC (the kernel's ktime_get_ns) once every
	// program is attached, so the programs can tell what began before
	// tracing did (bio: requests allocated earlier).
	AttachedVar = "attached_ns"
)

// DefaultRingSize is the event ring buffer's size unless a tool asks for
// another: enough to absorb bursts of a million small events per second
// while the reader sleeps between batches.
const DefaultRingSize = 16 << 20

// Options configure Load.
type Options struct {
	// Variables sets `const volatile` globals by name before load.
	Variables map[string]any
	// RingSize is the event ring's size in bytes: a power of two, at least
	// a page. Zero keeps DefaultRingSize.
	RingSize int
	// Debug puts the whole verifier log into errors.
	Debug bool
	// AlsoAttach attaches a program to more hooks than its section names,
	// given in the same syntax ("tracepoint/syscalls/sys_exit_open"). One
	// program on many hooks is verified once, not once per hook. Hooks
	// this kernel lacks are skipped and listed in Objects.Dropped.
	AlsoAttach map[string][]string
	// Alternatives lists groups of programs that do the same work on
	// different hooks, in order of preference (e.g. {"switch_btf",
	// "switch_raw"}: a BTF tracepoint, else a raw one). Of each group only
	// the first program whose hook this kernel has is loaded; the others
	// are removed before load and are not reported in Objects.Dropped.
	Alternatives [][]string
}

// Objects is a loaded and attached tool.
type Objects struct {
	Collection *ebpf.Collection
	// Dropped lists the hooks left out because this kernel lacks them,
	// with the reason, by "program@hook".
	Dropped map[string]error

	mu        sync.Mutex
	links     []attached     // in the order attached
	detaching sync.WaitGroup // Detach's closes under way
	detachErr []error        // what they failed with, for Close
}

// attached is one link of a program; closing is set once Detach has
// begun to close it.
type attached struct {
	prog    string
	link    link.Link
	closing bool
}

// Preflight checks what every tool needs before anything is loaded:
// privileges, BTF, tracefs, and no memlock limit on old kernels.
func Preflight() error { return preflight(true) }

// preflight is Preflight, with tracefs only if tracefs is true: a tool on
// BTF and raw tracepoints only never looks there, and a service without
// CAP_SYS_ADMIN could not mount it.
func preflight(tracefs bool) error {
	if err := CheckPrivileges(); err != nil {
		return err
	}
	if _, err := KernelBTF(); err != nil {
		return err
	}
	if tracefs {
		if err := EnsureTracefs(); err != nil {
			return err
		}
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		if errors.Is(err, unix.EPERM) {
			return ErrMemlock
		}
		return Explain("lift the memlock limit", err, false)
	}
	return nil
}

// Load prepares spec for this kernel, loads it and attaches every program,
// then sets AttachedVar if the object has it. Programs whose hook this
// kernel lacks are dropped before load; it is an error if none is left. On
// error nothing stays loaded or attached.
func Load(spec *ebpf.CollectionSpec, opts Options) (_ *Objects, err error) {
	if err := preflight(needsTracefs(spec, opts)); err != nil {
		return nil, err
	}
	spec = spec.Copy()
	if err := configure(spec, opts); err != nil {
		return nil, err
	}
	hooks, dropped, err := pruneMissingHooks(spec, opts)
	if err != nil {
		return nil, err
	}

	kernelTypes, err := KernelBTF()
	if err != nil {
		return nil, err
	}
	// The BTF Preflight read: otherwise the loader decodes it again.
	collOpts := ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: kernelTypes}}
	if opts.Debug {
		collOpts.Programs.LogLevel = ebpf.LogLevelInstruction
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, collOpts)
	if err != nil {
		return nil, Explain("load BPF programs", err, opts.Debug)
	}
	o := &Objects{Collection: coll, Dropped: dropped}
	defer func() {
		if err != nil {
			o.Close()
		}
	}()

	for _, name := range slices.Sorted(maps.Keys(hooks)) {
		for _, h := range hooks[name] {
			if !h.Attachable() || h.Kind == HookUprobe {
				continue // reached by tail calls; attached or run by the tool
			}
			l, err := h.attach(coll.Programs[name])
			if err != nil {
				return nil, Explain(fmt.Sprintf("attach %s to %s", name, h), err, opts.Debug)
			}
			o.links = append(o.links, attached{prog: name, link: l})
		}
	}
	if v, ok := coll.Variables[AttachedVar]; ok {
		var now unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
			return nil, fmt.Errorf("read the monotonic clock: %w", err)
		}
		if err := v.Set(uint64(now.Nano())); err != nil {
			return nil, fmt.Errorf("set %s: %w", AttachedVar, err)
		}
	}
	return o, nil
}

// configure sets variables and the ring size.
func configure(spec *ebpf.CollectionSpec, opts Options) error {
	for name, value := range opts.Variables {
		v, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("BPF object has no variable %q", name)
		}
		if err := v.Set(value); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	if m, ok := spec.Maps[eventsMap]; ok && m.Type == ebpf.RingBuf {
		size := opts.RingSize
		if size == 0 {
			size = DefaultRingSize
		}
		if err := ValidRingSize(size); err != nil {
			return err
		}
		m.MaxEntries = uint32(size)
		if v, ok := spec.Variables[wakeupBytesVar]; ok {
			if err := v.Set(uint64(wakeupBytes(size))); err != nil {
				return fmt.Errorf("set %s: %w", wakeupBytesVar, err)
			}
		}
	}
	return nil
}

// wakeupBytes is how much unread data wakes the reader: a batch of many
// records, but never so much that the ring could fill before it drains.
func wakeupBytes(ringSize int) int {
	return min(ringSize/8, 256<<10)
}

// ValidRingSize checks a ring buffer size: a power of two from 4 KiB to 1 GiB.
func ValidRingSize(size int) error {
	if size < 4096 || size > 1<<30 || size&(size-1) != 0 {
		return fmt.Errorf("ring buffer size %d: must be a power of two from 4096 (4 KiB) to 1073741824 (1 GiB)", size)
	}
	return nil
}

// Probe tells which of a tool's hooks this kernel has (by program name)
// and why the others are missing (by "program@hook"), without loading.
// Only the hook options (AlsoAttach, Alternatives) of opts matter.
func Probe(spec *ebpf.CollectionSpec, opts Options) (map[string][]Hook, map[string]error, error) {
	return pruneMissingHooks(spec.Copy(), opts)
}

// needsTracefs reports whether any program of spec may be attached, or
// have its hook looked up, through tracefs: a plain tracepoint or a uprobe
// (where the kernel has no uprobe PMU).
func needsTracefs(spec *ebpf.CollectionSpec, opts Options) bool {
	for name, p := range spec.Programs {
		for _, section := range append([]string{p.SectionName}, opts.AlsoAttach[name]...) {
			h, err := HookOf(&ebpf.ProgramSpec{Name: name, SectionName: section})
			if err != nil || h.Kind == HookTracepoint || h.Kind == HookUprobe {
				return true
			}
		}
	}
	return false
}

// pruneMissingHooks returns the hooks of each program that this kernel
// has; it removes from spec the programs that have none, and all but the
// first available program of each group of alternatives.
func pruneMissingHooks(spec *ebpf.CollectionSpec, opts Options) (map[string][]Hook, map[string]error, error) {
	also, alternatives := opts.AlsoAttach, opts.Alternatives
	for name := range also {
		if _, ok := spec.Programs[name]; !ok {
			return nil, nil, fmt.Errorf("BPF object has no program %q to attach", name)
		}
	}
	hooks := map[string][]Hook{}
	dropped := map[string]error{}
	for _, group := range alternatives {
		var why []string
		chosen := ""
		for _, name := range group {
			p, ok := spec.Programs[name]
			if !ok {
				return nil, nil, fmt.Errorf("alternative %q is not a program of this BPF object", name)
			}
			h, err := HookOf(p)
			if err != nil {
				return nil, nil, err
			}
			if chosen == "" {
				if err := h.Available(); err != nil {
					why = append(why, err.Error())
				} else {
					chosen = name
					continue
				}
			}
			delete(spec.Programs, name)
		}
		if chosen == "" && len(group) > 0 {
			dropped[group[0]] = errors.New(strings.Join(why, "; "))
		}
	}
	for name, p := range spec.Programs {
		sections := append([]string{p.SectionName}, also[name]...)
		for _, section := range sections {
			h, err := HookOf(&ebpf.ProgramSpec{Name: name, SectionName: section})
			if err != nil {
				return nil, nil, err
			}
			if err := h.Available(); err != nil {
				if errors.Is(err, ErrTracefsAccess) {
					return nil, nil, err // no hook is missing: bpfkit may not look
				}
				dropped[name+"@"+section] = err
				continue
			}
			hooks[name] = append(hooks[name], h)
		}
		if len(hooks[name]) == 0 {
			delete(spec.Programs, name)
		}
	}
	attachable := false
	for _, hs := range hooks {
		for _, h := range hs {
			attachable = attachable || h.Attachable()
		}
	}
	if !attachable {
		var why []string
		for _, err := range dropped {
			why = append(why, err.Error())
		}
		slices.Sort(why)
		return nil, nil, fmt.Errorf("none of this tool's hooks exist on this kernel: %s", strings.Join(why, "; "))
	}
	return hooks, dropped, nil
}

// Detach detaches program prog from its hooks in the background and
// returns at once: closing a tracepoint's perf event waits for an RCU grace
// period (tens of milliseconds). The program stays loaded, and Missed keeps
// counting its skipped runs so far. Close waits for the detach to end;
// until then Attached says true.
func (o *Objects) Detach(prog string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range o.links {
		a := &o.links[i]
		if a.prog != prog || a.closing {
			continue
		}
		a.closing = true
		o.detaching.Add(1)
		go func(l link.Link) {
			defer o.detaching.Done()
			err := l.Close()
			o.mu.Lock()
			defer o.mu.Unlock()
			o.links = slices.DeleteFunc(o.links, func(a attached) bool { return a.link == l })
			if err != nil {
				o.detachErr = append(o.detachErr, fmt.Errorf("detach %s: %w", prog, err))
			}
		}(a.link)
	}
}

// Attached says whether program prog is attached to any hook: its links
// are not all closed yet.
func (o *Objects) Attached(prog string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.ContainsFunc(o.links, func(a attached) bool { return a.prog == prog })
}

// Close detaches every program, then frees maps and programs. Links are
// closed concurrently: each detach waits for an RCU grace period, and one
// after the other they would take a good part of a second. It waits for
// Detach's closes too, and reports their errors.
func (o *Objects) Close() error {
	o.mu.Lock()
	var open []link.Link
	for i := range o.links {
		if a := &o.links[i]; !a.closing {
			a.closing = true
			open = append(open, a.link)
		}
	}
	o.mu.Unlock()
	errs := make([]error, len(open))
	var wg sync.WaitGroup
	for i, l := range open {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.Close()
		}()
	}
	wg.Wait()
	o.detaching.Wait()
	o.mu.Lock()
	o.links = nil
	errs = append(errs, o.detachErr...)
	o.detachErr = nil
	o.mu.Unlock()
	if o.Collection != nil {
		o.Collection.Close()
	}
	return errors.Join(errs...)
}

// Health is what a loaded tool reports about itself, the same way for every
// tool, in the CLI and in serve.
type Health struct {
	// Lost counts records the ring buffer had no room for, and, for
	// tools that keep their results in maps, entries those maps had no
	// room for (their capacity reached).
	Lost uint64
	// Full says, for a tool whose Lost counts entries its kernel table had
	// no room for, what was left out and which table, with its capacity
	// read from the loaded map: "threads not counted: the kernel table
	// (32768 threads) is full". Empty when Lost counts ring buffer records.
	Full string
	// Missed counts runs of the tool's programs the kernel skipped (see
	// Objects.Missed): events never seen.
	Missed uint64
	// Dropped lists the hooks this kernel lacks, by "program@hook".
	Dropped map[string]error
}

// Health reports the tool's losses so far and the hooks it lacks.
func (o *Objects) Health() Health {
	return Health{Lost: o.Lost(), Missed: o.Missed(), Dropped: o.Dropped}
}

// Missed is the number of times the kernel skipped one of the programs
// because it was already running on that CPU (a tracepoint hit from an
// interrupt while the program ran, e.g. a wakeup from a timer interrupt
// during a wakeup traced in process context): those events were not seen.
func (o *Objects) Missed() uint64 {
	var n uint64
	for _, p := range o.Collection.Programs {
		if st, err := p.Stats(); err == nil {
			n += st.RecursionMisses
		}
	}
	return n
}
