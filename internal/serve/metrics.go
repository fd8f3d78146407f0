package serve

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The labels of every per-cgroup metric; a metric adds its own after them.
var cgroupLabels = []string{"cgroup", "container_id", "runtime", "pod_uid"}

// extraSep joins the values of a metric's own labels in a series key.
const extraSep = "\x00"

// extraValues is the series key part of a metric with several labels of
// its own, in the order its Desc names them.
func extraValues(v ...string) string { return strings.Join(v, extraSep) }

// otherCgroup labels what is summed beyond --max-series.
const otherCgroup = "other"

func cgroupDesc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(slices.Clone(cgroupLabels), extra...), nil)
}

var (
	descExec = cgroupDesc("bpfkit_exec_total",
		"Successful execs (sched:sched_process_exec), by cgroup of the process.")
	descExit = cgroupDesc("bpfkit_exit_total",
		"Process exits, counted when the last thread exits; signal names the signal that ended the process, empty for an exit by exit(2).", "signal")
	descSwitches = cgroupDesc("bpfkit_context_switches_total",
		"Context switches of the cgroup's threads, voluntary (blocked) or involuntary (preempted), as /proc/PID/status counts them.", "kind")
	descRunqlat = cgroupDesc("bpfkit_runqueue_latency_seconds",
		"Time runnable tasks waited for a CPU, by cgroup of the task (log2 buckets of microseconds).")
	descFileBytes = cgroupDesc("bpfkit_file_io_bytes_total",
		"Bytes read and written by read and write system calls (read, pread64, readv, preadv, preadv2 and the write ones) on regular files.", "op")
	descFileOps = cgroupDesc("bpfkit_file_io_ops_total",
		"Read and write system calls on regular files that succeeded (a read at end of file too).", "op")
	descOpenErrors = cgroupDesc("bpfkit_open_errors_total",
		"Failed open, openat and openat2 calls, by errno.", "errno")
	descTCPClosed = cgroupDesc("bpfkit_tcp_connections_closed_total",
		"TCP connections closed (sock:inet_sock_set_state to CLOSE, listeners left out), by cgroup of the socket's owner.")
	descTCPRetransmits = cgroupDesc("bpfkit_tcp_retransmits_total",
		"TCP retransmissions, tail loss probes included (tcp:tcp_retransmit_skb: one per retransmitted buffer, which TcpRetransSegs counts once per segment), by cgroup of the socket's owner.")
	descOOMKills = cgroupDesc("bpfkit_oom_kills_total",
		"Processes killed by the OOM killer (oom:mark_victim), by cgroup of the victim.")
	descZombies = cgroupDesc("bpfkit_zombie_seconds",
		"Time processes stayed zombies, from the exit of their last thread to the wait4 or waitid that reaped them, by cgroup of the zombie (log2 buckets of microseconds).")
	descSyscalls = cgroupDesc("bpfkit_syscalls_total",
		"System calls returned (raw_syscalls:sys_exit; exit and exit_group never return), by syscall as this kernel names it.", "syscall")
	descSyscallErrors = cgroupDesc("bpfkit_syscall_errors_total",
		"System calls that failed (returned -4095 to -1), by syscall.", "syscall")

	descBlockBytes = cgroupDesc("bpfkit_block_io_bytes_total",
		"Bytes of the block I/O requests completed, by cgroup of the task that submitted them (kernel threads: the root cgroup), device (as /proc/partitions names it) and direction (the kernel's rq_data_dir: discards count as writes).", "disk", "op")
	descMallocBytes = cgroupDesc("bpfkit_malloc_bytes_total",
		"Bytes the processes of --malloc-pids asked their allocator for (malloc, calloc, realloc, the aligned ones, jemalloc's mallocx and rallocx: the sizes asked, not the blocks' real sizes), by cgroup of the calling thread and allocator (glibc, jemalloc, tcmalloc, mimalloc, or the library's file name).", "allocator")
	descBlockLatency = prometheus.NewDesc("bpfkit_block_io_latency_seconds",
		"Block I/O request latency from issue to the driver to completion, by device and operation as the kernel names it (log2 buckets of microseconds).",
		[]string{"disk", "op"}, nil)

	descXDPPackets = prometheus.NewDesc("bpfkit_xdp_packets_total",
		"Packets seen by bpfkit's XDP filters, by interface, rule id (or default, malformed, non-ip) and action.",
		[]string{"iface", "netns", "rule", "action"}, nil)
	descXDPBytes = prometheus.NewDesc("bpfkit_xdp_bytes_total",
		"Bytes of the packets seen by bpfkit's XDP filters, labelled as bpfkit_xdp_packets_total.",
		[]string{"iface", "netns", "rule", "action"}, nil)

	descLost = prometheus.NewDesc("bpfkit_events_lost_total",
		"Events a tool could not count because one of its maps was full.", []string{"tool"}, nil)
	descSkipped = prometheus.NewDesc("bpfkit_tool_skipped_total",
		"Runs of a tool's programs the kernel skipped because the program was already running on that CPU (recursion misses).", []string{"tool"}, nil)
	descScrape = prometheus.NewDesc("bpfkit_scrape_duration_seconds",
		"How long reading the kernel's maps took for this scrape.", nil, nil)
	descDropped = prometheus.NewDesc("bpfkit_series_dropped_total",
		"Series that did not fit under --max-series and are summed into cgroup=\"other\" (each counted once).", nil, nil)
	descCgroupWalks = prometheus.NewDesc("bpfkit_cgroup_walks_total",
		"Walks of the cgroup2 tree to name cgroup ids not seen before.", nil, nil)
)

// series is one label set of a per-cgroup metric.
type series struct {
	path, extra string
}

// sample is what a scrape found for one series.
type sample struct {
	cg    *cgroup
	value float64
	hist  *histogram
}

// histogram is a run-queue latency histogram: log2 slots and the sum.
type histogram struct {
	slots [32]uint64
	sumNs uint64
}

func (h *histogram) add(o *histogram) {
	for i := range h.slots {
		h.slots[i] += o.slots[i]
	}
	h.sumNs += o.sumNs
}

// family is one per-cgroup metric: the samples of the scrape in progress,
// and which series have a place of their own. A series keeps the place it
// was given (first come, first served, in cgroup path order within a
// scrape), so every series, "other" included, only ever grows.
type family struct {
	desc     *prometheus.Desc
	extras   int // labels beyond cgroupLabels
	samples  map[series]*sample
	admitted map[series]bool // true: own series; false: summed into other
	own      int
	dropped  uint64
	// The label pairs of each series sent, made once: a scrape of 10,000
	// series would otherwise make 50,000 pairs anew (most of its garbage).
	labels map[series][]*dto.LabelPair
	pairs  *labelPairs
	// Set by rising: the highest value each series was sent with, and
	// what the values are read from.
	floor     map[series]float64
	floorFrom any
}

func newFamily(desc *prometheus.Desc, extras int, pairs *labelPairs) *family {
	return &family{desc: desc, extras: extras, samples: map[series]*sample{}, admitted: map[series]bool{},
		labels: map[series][]*dto.LabelPair{}, pairs: pairs}
}

// add adds v to the series of cgroup cg with the value extra of the
// metric's own label (extraValues of them, for several).
// Several cgroup ids can share a path (a cgroup removed and made again).
func (f *family) add(cg *cgroup, extra string, v float64) {
	k := series{cg.path, extra}
	if s, ok := f.samples[k]; ok {
		s.value += v
		return
	}
	f.samples[k] = &sample{cg: cg, value: v}
}

func (f *family) addHist(cg *cgroup, h *histogram) {
	k := series{cg.path, ""}
	s, ok := f.samples[k]
	if !ok {
		s = &sample{cg: cg, hist: &histogram{}}
		f.samples[k] = s
	}
	s.hist.add(h)
}

// admit says whether k has a series of its own.
func (f *family) admit(k series, max int) bool {
	if own, ok := f.admitted[k]; ok {
		return own
	}
	own := f.own < max
	if own {
		f.own++
	} else {
		f.dropped++
	}
	f.admitted[k] = own
	return own
}

// reset forgets which series have places (a new --max-series), and the
// highest values sent (what "other" sums changes).
func (f *family) reset() {
	clear(f.admitted)
	clear(f.floor)
	f.own, f.dropped = 0, 0
}

// rising makes every series of f, from this scrape on, never lower than
// the highest value it was sent with: for counters a scrape can read lower
// than the truth, but never higher (collectCswitch). from is what the
// values are read from, a map of the loaded tool: a tool loaded anew
// counts from zero again, and the floors go.
func (f *family) rising(from any) {
	if f.floor == nil || f.floorFrom != from {
		f.floor, f.floorFrom = map[series]float64{}, from
	}
}

// emit sends the scrape's series, at most max of them plus one "other"
// per extra label value, and clears the samples. Series new to this scrape
// get their places in path order; the others keep theirs (Prometheus
// sorts what it is sent, so nothing else needs an order).
func (f *family) emit(ch chan<- prometheus.Metric, max int) {
	var fresh []series
	for k := range f.samples {
		if _, ok := f.admitted[k]; !ok {
			fresh = append(fresh, k)
		}
	}
	slices.SortFunc(fresh, func(a, b series) int {
		return cmp.Or(cmp.Compare(a.path, b.path), cmp.Compare(a.extra, b.extra))
	})
	for _, k := range fresh {
		f.admit(k, max)
	}
	var other map[string]*sample
	for k, s := range f.samples {
		if f.admitted[k] {
			f.send(ch, s, k)
			continue
		}
		if other == nil {
			other = map[string]*sample{}
		}
		o, ok := other[k.extra]
		if !ok {
			o = &sample{cg: &cgroup{path: otherCgroup}}
			if s.hist != nil {
				o.hist = &histogram{}
			}
			other[k.extra] = o
		}
		o.value += s.value
		if s.hist != nil {
			o.hist.add(s.hist)
		}
	}
	for extra, o := range other {
		f.send(ch, o, series{otherCgroup, extra})
	}
	clear(f.samples)
}

// send sends series k (s its sample), with the label pairs made the first
// time it is sent.
func (f *family) send(ch chan<- prometheus.Metric, s *sample, k series) {
	values := func() []string {
		c := s.cg.ctr
		v := []string{k.path, c.ID, c.Runtime, c.PodUID}
		if f.extras > 0 {
			v = append(v, strings.SplitN(k.extra, extraSep, f.extras)...)
		}
		return v
	}
	if s.hist != nil {
		ch <- prometheus.MustNewConstHistogram(f.desc, s.hist.count(), float64(s.hist.sumNs)/1e9, s.hist.buckets(), values()...)
		return
	}
	pairs, ok := f.labels[k]
	if !ok {
		pairs = f.pairs.make(f.desc, values())
		f.labels[k] = pairs
	}
	value := s.value
	if f.floor != nil {
		value = max(value, f.floor[k])
		f.floor[k] = value
	}
	m := &counterMetric{desc: f.desc, labels: pairs, value: value}
	m.counter.Value = &m.value
	ch <- m
}

// labelPairs hands out one dto.LabelPair per label name and value, shared
// by every series and family that has it (the empty container labels, an
// errno, a cgroup path in several metrics). The pairs are never changed.
type labelPairs struct {
	byNameValue map[[2]string]*dto.LabelPair
}

func newLabelPairs() *labelPairs {
	return &labelPairs{byNameValue: map[[2]string]*dto.LabelPair{}}
}

// make returns desc's label pairs for values, sorted by name as
// prometheus.MakeLabelPairs sorts them, each pair shared.
func (lp *labelPairs) make(desc *prometheus.Desc, values []string) []*dto.LabelPair {
	pairs := prometheus.MakeLabelPairs(desc, values)
	for i, p := range pairs {
		k := [2]string{p.GetName(), p.GetValue()}
		if shared, ok := lp.byNameValue[k]; ok {
			pairs[i] = shared
		} else {
			lp.byNameValue[k] = p
		}
	}
	return pairs
}

// counterMetric is one series' value in one scrape, with label pairs made
// once: a counter as prometheus.NewConstMetric makes it, without making
// the pairs again.
type counterMetric struct {
	desc    *prometheus.Desc
	labels  []*dto.LabelPair
	value   float64
	counter dto.Counter
}

func (m *counterMetric) Desc() *prometheus.Desc { return m.desc }

func (m *counterMetric) Write(out *dto.Metric) error {
	out.Label = m.labels
	out.Counter = &m.counter
	return nil
}

func (h *histogram) count() uint64 {
	var n uint64
	for _, c := range h.slots {
		n += c
	}
	return n
}

// buckets turns the kernel's log2 slots into cumulative buckets. Slot i
// counts waits of floor(log2(µs)) = i, that is under 2^(i+1) µs: its
// upper bound. The last slot also holds everything longer: +Inf only.
func (h *histogram) buckets() map[float64]uint64 {
	b := make(map[float64]uint64, len(h.slots)-1)
	var n uint64
	for i, c := range h.slots[:len(h.slots)-1] {
		n += c
		b[math.Ldexp(1e-6, i+1)] = n
	}
	return b
}
