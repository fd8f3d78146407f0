package loader

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// Names every tracer's BPF object shares (bpf/include/common.h).
const (
	eventsMap      = "events"
	lostMap        = "lost"
	wakeupBytesVar = "wakeup_bytes"
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
	// Dropped lists the programs left out because this kernel lacks their
	// hook, with the reason.
	Dropped map[string]error
	links   []link.Link
}

// Preflight checks what every tool needs before anything is loaded:
// privileges, BTF, tracefs, and no memlock limit on old kernels.
func Preflight() error {
	if err := CheckPrivileges(); err != nil {
		return err
	}
	if _, err := btf.LoadKernelSpec(); err != nil {
		return ErrNoBTF
	}
	if err := EnsureTracefs(); err != nil {
		return err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return explain("lift the memlock limit", err, false)
	}
	return nil
}

// Load prepares spec for this kernel, loads it and attaches every program.
// Programs whose hook this kernel lacks are dropped before load; it is an
// error if none is left. On error nothing stays loaded or attached.
func Load(spec *ebpf.CollectionSpec, opts Options) (_ *Objects, err error) {
	if err := Preflight(); err != nil {
		return nil, err
	}
	spec = spec.Copy()
	if err := configure(spec, opts); err != nil {
		return nil, err
	}
	hooks, dropped, err := pruneMissingHooks(spec, opts.Alternatives)
	if err != nil {
		return nil, err
	}

	collOpts := ebpf.CollectionOptions{}
	if opts.Debug {
		collOpts.Programs.LogLevel = ebpf.LogLevelInstruction
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, collOpts)
	if err != nil {
		return nil, explain("load BPF programs", err, opts.Debug)
	}
	o := &Objects{Collection: coll, Dropped: dropped}
	defer func() {
		if err != nil {
			o.Close()
		}
	}()

	for _, name := range slices.Sorted(maps.Keys(hooks)) {
		l, err := hooks[name].attach(coll.Programs[name])
		if err != nil {
			return nil, explain(fmt.Sprintf("attach %s to %s", name, hooks[name]), err, opts.Debug)
		}
		o.links = append(o.links, l)
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

// pruneMissingHooks removes programs whose hook is missing from spec, and
// all but the first available program of each group of alternatives, and
// returns the hooks of the remaining ones.
func pruneMissingHooks(spec *ebpf.CollectionSpec, alternatives [][]string) (map[string]Hook, map[string]error, error) {
	hooks := map[string]Hook{}
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
		h, err := HookOf(p)
		if err != nil {
			return nil, nil, err
		}
		if err := h.Available(); err != nil {
			dropped[name] = err
			delete(spec.Programs, name)
			continue
		}
		hooks[name] = h
	}
	if len(hooks) == 0 {
		var why []string
		for _, err := range dropped {
			why = append(why, err.Error())
		}
		slices.Sort(why)
		return nil, nil, fmt.Errorf("none of this tool's hooks exist on this kernel: %s", strings.Join(why, "; "))
	}
	return hooks, dropped, nil
}

// Close detaches every program, then frees maps and programs.
func (o *Objects) Close() error {
	var errs []error
	for _, l := range o.links {
		errs = append(errs, l.Close())
	}
	o.links = nil
	if o.Collection != nil {
		o.Collection.Close()
	}
	return errors.Join(errs...)
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
