// Package softirqs measures the time each CPU spends in each softirq
// vector (NET_RX, TIMER, RCU, ...), from irq:softirq_entry to
// irq:softirq_exit, like bcc's softirqs, with the number of runs and log2
// histograms of their lengths. The vectors' names come from the running
// kernel's /proc/softirqs.
package softirqs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
)

// Tool describes softirqs to its command, to `bpfkit check` and to serve.
var Tool = tool.Descriptor{
	Name:    "softirqs",
	Kind:    tool.Sampler,
	Summary: "Time spent in each softirq vector per CPU, with counts and histograms (like bcc's softirqs)",
	Spec:    loadSoftirqs,
	Metrics: []string{"bpfkit_softirq_seconds_total"},
	Hooks: loader.Options{Alternatives: [][]string{ // BTF tracepoints, else raw ones
		{softirqsProgSoftirqEntryBtf, softirqsProgSoftirqEntryRaw},
		{softirqsProgSoftirqExitBtf, softirqsProgSoftirqExitRaw},
	}},
}

// Slots is the number of log2 buckets of a histogram.
const Slots = 32

// Config chooses the histograms' unit, or none.
type Config struct {
	Nanoseconds  bool // histograms in ns instead of µs
	NoHistograms bool // counts and time only: Stat.Hist stays empty, each run costs less
	Debug        bool
}

// Stat is one vector's softirqs on one CPU (or on all, CPU -1).
type Stat struct {
	CPU    int
	Vector int
	Name   string        // as /proc/softirqs names it: NET_RX, TIMER, ...
	Count  uint64        // runs begun (what /proc/softirqs counts)
	Time   time.Duration // time in the runs that ended
	Hist   [Slots]uint64 // log2 of each run's length in the Config's unit (empty with NoHistograms)
}

// Tracer measures from New until Close.
type Tracer struct {
	objs  *loader.Objects
	maps  softirqsMaps
	names []string
	prev  map[[2]int]Stat
}

// New loads softirqs' programs and attaches them.
func New(cfg Config) (*Tracer, error) {
	names, _, err := ReadProc()
	if err != nil {
		return nil, err
	}
	spec, err := loadSoftirqs()
	if err != nil {
		return nil, err
	}
	var knobs softirqsVariableSpecs
	if err := spec.Assign(&knobs); err != nil {
		return nil, err
	}
	if err := knobs.InNs.Set(cfg.Nanoseconds); err != nil {
		return nil, fmt.Errorf("configure softirqs: %w", err)
	}
	if err := knobs.Hists.Set(!cfg.NoHistograms); err != nil {
		return nil, fmt.Errorf("configure softirqs: %w", err)
	}
	objs, err := Tool.Load(spec, loader.Options{
		RingSize: 4096, // no events: the smallest ring
		Debug:    cfg.Debug,
	})
	if err != nil {
		return nil, err
	}
	t := &Tracer{objs: objs, names: names, prev: map[[2]int]Stat{}}
	if err := objs.Assign(&t.maps); err != nil {
		objs.Close()
		return nil, err
	}
	return t, nil
}

// Close detaches and frees everything.
func (t *Tracer) Close() error { return t.objs.Close() }

// Health reports runs the kernel skipped and missing hooks.
func (t *Tracer) Health() loader.Health { return t.objs.Health() }

// Totals returns every CPU's softirqs since New, per vector, CPU first;
// vectors and CPUs with none are left out.
func (t *Tracer) Totals() ([]Stat, error) { return read(t.maps.Stats, t.names) }

// Read reads the softirqs counted by objects loaded from Tool.Spec, for
// the vectors named (ReadProc's names).
func Read(objs *loader.Objects, names []string) ([]Stat, error) {
	var maps softirqsMaps
	if err := objs.Assign(&maps); err != nil {
		return nil, err
	}
	return read(maps.Stats, names)
}

// read reads the per-CPU stats map m.
func read(m *ebpf.Map, names []string) ([]Stat, error) {
	var out []Stat
	for vec := range names {
		var perCPU []softirqsSoftirqStat
		if err := m.Lookup(uint32(vec), &perCPU); err != nil {
			return nil, fmt.Errorf("read softirq vector %d: %w", vec, err)
		}
		for cpu, raw := range perCPU {
			if raw.Count == 0 {
				continue
			}
			out = append(out, Stat{CPU: cpu, Vector: vec, Name: names[vec],
				Count: raw.Count, Time: time.Duration(raw.Ns), Hist: raw.Hist})
		}
	}
	slices.SortFunc(out, func(a, b Stat) int {
		if a.CPU != b.CPU {
			return a.CPU - b.CPU
		}
		return a.Vector - b.Vector
	})
	return out, nil
}

// Delta returns what was counted since the previous call (or New).
func (t *Tracer) Delta() ([]Stat, error) {
	now, err := t.Totals()
	if err != nil {
		return nil, err
	}
	var out []Stat
	next := make(map[[2]int]Stat, len(now))
	for _, s := range now {
		k := [2]int{s.CPU, s.Vector}
		next[k] = s
		p := t.prev[k]
		d := s
		d.Count -= p.Count
		d.Time -= p.Time
		for i := range d.Hist {
			d.Hist[i] -= p.Hist[i]
		}
		if d.Count > 0 || d.Time > 0 {
			out = append(out, d)
		}
	}
	t.prev = next
	return out, nil
}

// AllCPUs adds up each vector's CPUs (CPU -1), in vector order.
func AllCPUs(stats []Stat) []Stat {
	var out []Stat
	at := map[int]int{}
	for _, s := range stats {
		i, ok := at[s.Vector]
		if !ok {
			at[s.Vector] = len(out)
			s.CPU = -1
			out = append(out, s)
			continue
		}
		out[i].Count += s.Count
		out[i].Time += s.Time
		for j := range s.Hist {
			out[i].Hist[j] += s.Hist[j]
		}
	}
	slices.SortFunc(out, func(a, b Stat) int { return a.Vector - b.Vector })
	return out
}

// ReadProc reads /proc/softirqs: the vectors' names in vector order and,
// per vector, the count on each possible CPU.
func ReadProc() (names []string, counts [][]uint64, err error) {
	raw, err := os.ReadFile("/proc/softirqs")
	if err != nil {
		return nil, nil, fmt.Errorf("read softirq names: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Scan() // "CPU0 CPU1 ..."
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var per []uint64
		for _, f := range strings.Fields(rest) {
			n, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return nil, nil, fmt.Errorf("/proc/softirqs: %q: %w", sc.Text(), err)
			}
			per = append(per, n)
		}
		names = append(names, strings.TrimSpace(name))
		counts = append(counts, per)
	}
	if len(names) == 0 || len(names) > 16 {
		return nil, nil, fmt.Errorf("/proc/softirqs lists %d vectors: expected 1 to 16", len(names))
	}
	return names, counts, nil
}
