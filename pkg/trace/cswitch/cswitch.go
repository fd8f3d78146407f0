// Package cswitch counts context switches per thread, split like
// /proc/PID/status into voluntary ones (the task blocked: I/O, a lock, a
// sleep) and involuntary ones (it was preempted while still runnable: CPU
// contention), the way `pidstat -w` shows them but exact: every switch is
// counted in the kernel at sched_switch.
//
// Each switch is classified as the kernel classifies it (kernel/sched/core.c,
// __schedule): cswitch reads the kernel's own voluntary counter at the
// switch and sees whether it moved. That also gets right the case the
// tracepoint's arguments cannot show: a task that tries to block with a
// signal pending is set back to TASK_RUNNING, looks preempted, and is
// counted as voluntary. A thread's first switch after cswitch starts has no
// previous counter and is classified by the kernel's rule from the task's
// state (preempted or still runnable: involuntary).
package cswitch

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// Tool describes cswitch to its command, to `bpfkit check` and to serve.
var Tool = tool.Descriptor{
	Name:    "cswitch",
	Kind:    tool.Sampler,
	Summary: "Count voluntary and involuntary context switches per thread, exactly (like pidstat -w)",
	Spec:    loadCswitch,
	Hooks:   loader.Options{Alternatives: alternatives},
}

// Config selects what is counted. Filters run in the kernel.
type Config struct {
	Filter loader.TaskFilter
	Debug  bool // full verifier log on rejection
}

// Count is the switches of one thread (or of one process, with TID 0,
// after PerProcess).
type Count struct {
	PID, TID    uint32
	Comm        string
	Voluntary   uint64
	Involuntary uint64
}

// Total is voluntary plus involuntary switches.
func (c Count) Total() uint64 { return c.Voluntary + c.Involuntary }

// Alternatives are the hooks cswitch can use, in order of preference.
var alternatives = [][]string{{"sched_switch_btf", "sched_switch_raw"}}

// Tracer counts from New until Close.
type Tracer struct {
	objs *loader.Objects
	maps cswitchMaps
	prev map[uint32]Count
}

// New loads cswitch's program and attaches it to sched_switch.
func New(cfg Config) (*Tracer, error) {
	spec, err := loadCswitch()
	if err != nil {
		return nil, err
	}
	vars, err := cfg.Filter.Variables()
	if err != nil {
		return nil, err
	}
	objs, err := Tool.Load(spec, loader.Options{
		Variables: vars,
		RingSize:  4096, // cswitch sends no events: the smallest ring
		Debug:     cfg.Debug,
	})
	if err != nil {
		return nil, err
	}
	t := &Tracer{objs: objs, prev: map[uint32]Count{}}
	if err := objs.Assign(&t.maps); err != nil {
		objs.Close()
		return nil, err
	}
	return t, nil
}

// Close detaches and frees everything.
func (t *Tracer) Close() error { return t.objs.Close() }

// Health reports the threads not counted because the kernel's table was
// full, the runs the kernel skipped and the hooks this kernel lacks.
func (t *Tracer) Health() loader.Health {
	h := t.objs.Health()
	h.Full = fmt.Sprintf("threads not counted: the kernel table (%d threads) is full", t.maps.Counts.MaxEntries())
	return h
}

// Totals returns every thread's switches since New, by thread id.
func (t *Tracer) Totals() (map[uint32]Count, error) {
	out := map[uint32]Count{}
	if err := loader.ReadAll(t.maps.Counts, func(tid *uint32, raw *cswitchCswitchCount) {
		out[*tid] = Count{
			PID: raw.Pid, TID: raw.Tid, Comm: string(trace.CString(raw.Comm[:])),
			Voluntary: raw.Voluntary, Involuntary: raw.Involuntary,
		}
	}); err != nil {
		return nil, fmt.Errorf("read switch counts: %w", err)
	}
	return out, nil
}

// Delta returns the threads that switched since the previous call (or since
// New) with the switches they made in between, and forgets the threads that
// have exited, so the kernel's table only holds live ones. The kernel's
// counters only grow, so no switch is lost between two calls.
func (t *Tracer) Delta() ([]Count, error) {
	now, err := t.Totals()
	if err != nil {
		return nil, err
	}
	var out []Count
	for tid, c := range now {
		p := t.prev[tid]
		d := c
		d.Voluntary -= p.Voluntary
		d.Involuntary -= p.Involuntary
		if d.Total() > 0 {
			out = append(out, d)
		}
		if !alive(tid) {
			if err := t.maps.Counts.Delete(tid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return nil, fmt.Errorf("forget thread %d: %w", tid, err)
			}
			delete(now, tid)
		}
	}
	t.prev = now
	return out, nil
}

// alive reports whether a thread id exists on the machine.
func alive(tid uint32) bool {
	_, err := os.Stat("/proc/" + strconv.FormatUint(uint64(tid), 10))
	return err == nil
}

// PerProcess adds up the threads of each process; TID is 0 and Comm is the
// main thread's (or the first one's).
func PerProcess(counts []Count) []Count {
	byPID := map[uint32]int{}
	var out []Count
	for _, c := range counts {
		i, ok := byPID[c.PID]
		if !ok {
			byPID[c.PID] = len(out)
			c.TID = 0
			out = append(out, c)
			continue
		}
		if c.TID == c.PID {
			out[i].Comm = c.Comm
		}
		out[i].Voluntary += c.Voluntary
		out[i].Involuntary += c.Involuntary
	}
	return out
}

// Top sorts counts by total switches, most first (ties by pid, tid), and
// keeps the first rows (all if rows <= 0).
func Top(counts []Count, rows int) []Count {
	slices.SortFunc(counts, func(a, b Count) int {
		if a.Total() != b.Total() {
			if a.Total() > b.Total() {
				return -1
			}
			return 1
		}
		if a.PID != b.PID {
			return int(a.PID) - int(b.PID)
		}
		return int(a.TID) - int(b.TID)
	})
	if rows > 0 && len(counts) > rows {
		counts = counts[:rows]
	}
	return counts
}

// Row is one line of output: a thread's or a process's switches over an
// interval.
type Row struct {
	Time     time.Time // end of the interval
	Interval time.Duration
	Count
}
