// Package runqlat measures run-queue latency: how long a runnable task
// waits for a CPU, from the moment it is woken (sched_wakeup,
// sched_wakeup_new) or preempted while runnable (sched_switch) until
// sched_switch puts it on a CPU. Latencies go into log2 histograms in the
// kernel, one for everything or one per process, thread or pid namespace.
//
// Known issue: on 6.12+ kernels (EEVDF with delayed dequeue) a task
// switched out blocked is, rarely, switched in again before the
// sched_wakeup that ends its sleep is traced (the wakeup then fires in the
// task's own context). Such a switch-in has no enqueue time: it is counted
// in Stats.NoStart, not in the histograms (about 1 in 2000 switches of a
// 1 ms nanosleep loop here).
package runqlat

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// Tool describes runqlat to its command, to `bpfkit check` and to serve.
var Tool = tool.Descriptor{
	Name:    "runqlat",
	Kind:    tool.Sampler,
	Summary: "Histograms of run-queue latency: how long runnable tasks wait for a CPU",
	Spec:    loadRunqlat,
	Hooks:   loader.Options{Alternatives: alternatives},
}

// KeyBy is what a histogram is kept for (enum runqlat_key).
type KeyBy uint32

const (
	All       = KeyBy(runqlatRunqlatKeyKEY_ALL)     // one histogram
	ByProcess = KeyBy(runqlatRunqlatKeyKEY_PROCESS) // per thread group id (-P)
	ByThread  = KeyBy(runqlatRunqlatKeyKEY_THREAD)  // per thread id (-L)
	ByPIDNS   = KeyBy(runqlatRunqlatKeyKEY_PIDNS)   // per pid namespace (--pidnss)
)

// Slots is the number of log2 buckets (RUNQLAT_SLOTS in bpf/runqlat.h).
const Slots = len(runqlatRunqlatHist{}.Slots)

// Config selects what is measured. Filters run in the kernel.
type Config struct {
	Filter       loader.TaskFilter // PID, TID, Comm, Cgroup (no UID)
	Key          KeyBy
	Milliseconds bool // buckets in ms instead of µs
	Debug        bool
}

// Hist is one histogram: Buckets[i] counts latencies v with
// floor(log2(v)) == i (bucket 0 also holds 0), v in the unit.
type Hist struct {
	Key     uint32 // pid, tid or pid namespace inode; 0 for All
	Comm    string // for ByProcess and ByThread
	Buckets [Slots]uint64
}

// Total is the number of latencies in h.
func (h *Hist) Total() uint64 {
	var n uint64
	for _, c := range h.Buckets {
		n += c
	}
	return n
}

// Stats count the switches-in of the selected tasks.
type Stats struct {
	SwitchIns uint64 // selected tasks put on a CPU
	// NoStart counts switch-ins of which the enqueue was not seen (before
	// tracing began, see the package doc; or a wakeup the kernel skipped,
	// counted in Health().Missed).
	NoStart uint64
}

var alternatives = [][]string{
	{"sched_switch_btf", "sched_switch_raw"},
	{"sched_wakeup_btf", "sched_wakeup_raw"},
	{"sched_wakeup_new_btf", "sched_wakeup_new_raw"},
}

// Tracer measures from New until Close.
type Tracer struct {
	objs *loader.Objects
	maps runqlatMaps
	key  KeyBy
	prev map[uint32]Hist
}

// New loads runqlat's programs and attaches them.
func New(cfg Config) (*Tracer, error) {
	if cfg.Filter.UID != nil {
		return nil, fmt.Errorf("runqlat cannot filter by user: filter by --pid or --cgroup")
	}
	spec, err := loadRunqlat()
	if err != nil {
		return nil, err
	}
	var knobs runqlatVariableSpecs
	if err := spec.Assign(&knobs); err != nil {
		return nil, err
	}
	if err := errors.Join(knobs.KeyBy.Set(uint32(cfg.Key)), knobs.InMs.Set(cfg.Milliseconds)); err != nil {
		return nil, fmt.Errorf("configure runqlat: %w", err)
	}
	vars, err := cfg.Filter.Variables()
	if err != nil {
		return nil, err
	}
	objs, err := Tool.Load(spec, loader.Options{
		Variables: vars,
		RingSize:  4096, // runqlat sends no events: the smallest ring
		Debug:     cfg.Debug,
	})
	if err != nil {
		return nil, err
	}
	t := &Tracer{objs: objs, key: cfg.Key, prev: map[uint32]Hist{}}
	if err := objs.Assign(&t.maps); err != nil {
		objs.Close()
		return nil, err
	}
	return t, nil
}

// Close detaches and frees everything.
func (t *Tracer) Close() error { return t.objs.Close() }

// Totals returns the histograms since New, by key.
func (t *Tracer) Totals() ([]Hist, error) {
	var (
		key uint32
		raw runqlatRunqlatHist
		out []Hist
	)
	if t.key == All {
		var perCPU []runqlatRunqlatHist
		if err := t.maps.HistAll.Lookup(uint32(0), &perCPU); err != nil {
			return nil, fmt.Errorf("read histogram: %w", err)
		}
		var h Hist
		for _, c := range perCPU {
			for i, n := range c.Slots {
				h.Buckets[i] += n
			}
		}
		if h.Total() == 0 {
			return nil, nil
		}
		return []Hist{h}, nil
	}
	it := t.maps.Hists.Iterate()
	for it.Next(&key, &raw) {
		h := Hist{Key: key, Comm: string(trace.CString(raw.Comm[:]))}
		copy(h.Buckets[:], raw.Slots[:])
		out = append(out, h)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read histograms: %w", err)
	}
	slices.SortFunc(out, func(a, b Hist) int { return int(a.Key) - int(b.Key) })
	return out, nil
}

// Delta returns what each histogram gained since the previous call (or
// since New), leaving out those that gained nothing. The kernel's counters
// only grow, so nothing is lost between calls.
func (t *Tracer) Delta() ([]Hist, error) {
	now, err := t.Totals()
	if err != nil {
		return nil, err
	}
	var out []Hist
	next := make(map[uint32]Hist, len(now))
	for _, h := range now {
		next[h.Key] = h
		p := t.prev[h.Key]
		for i := range h.Buckets {
			h.Buckets[i] -= p.Buckets[i]
		}
		if h.Total() > 0 {
			out = append(out, h)
		}
	}
	t.prev = next
	return out, nil
}

// Health reports the latencies not recorded because the histogram table
// was full, the runs the kernel skipped (a wakeup or switch not seen) and
// the hooks this kernel lacks.
func (t *Tracer) Health() loader.Health {
	h := t.objs.Health()
	h.Full = fmt.Sprintf("latencies not recorded: the histogram table (%d keys) is full", t.maps.Hists.MaxEntries())
	return h
}

// Stats returns the switch-in counters since New.
func (t *Tracer) Stats() (Stats, error) {
	var perCPU []uint64
	var st Stats
	for slot, dst := range map[runqlatRunqlatStat]*uint64{
		runqlatRunqlatStatSTAT_SWITCH_IN: &st.SwitchIns,
		runqlatRunqlatStatSTAT_NO_START:  &st.NoStart,
	} {
		if err := t.maps.Stats.Lookup(uint32(slot), &perCPU); err != nil {
			return st, fmt.Errorf("read runqlat stats: %w", err)
		}
		for _, v := range perCPU {
			*dst += v
		}
	}
	return st, nil
}

// Report is a histogram at a time, for printing.
type Report struct {
	Time time.Time
	Unit string // "usecs" or "msecs"
	By   KeyBy
	Hist
}
