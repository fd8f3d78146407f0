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

// cgroupDesc makes the Desc of a per-cgroup metric and records its name
// and help for its family, which builds its series itself (family.build).
func cgroupDesc(name, help string, extra ...string) *prometheus.Desc {
	d := prometheus.NewDesc(name, help, append(slices.Clone(cgroupLabels), extra...), nil)
	familyText[d] = [2]string{name, help}
	return d
}

// familyText is the name and help of each per-cgroup metric.
var familyText = map[*prometheus.Desc][2]string{}

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
//
// A family builds its part of the page itself (build), not through the
// registry's Collect: a scrape of 10,000 series spent more than half its
// time in the registry's checks of each series and its sort of them. The
// series are made so that they need neither: each has one key (cgroup path
// and own label values, valid UTF-8), made into label pairs once, and the
// family keeps its series in key order, sorting only those new to a
// scrape.
type family struct {
	desc     *prometheus.Desc
	extras   int // labels beyond cgroupLabels
	samples  map[series]*sample
	admitted map[series]bool // true: own series; false: summed into other
	own      int
	dropped  uint64
	pairs    *labelPairs
	// Every series ever sent, made once (a scrape of 10,000 series would
	// otherwise make 50,000 label pairs anew, most of its garbage), and
	// their keys in order.
	metrics map[series]*dto.Metric
	order   []series
	out     dto.MetricFamily // what the last build made
	// Set by rising: the highest value each series was sent with, and
	// what the values are read from.
	floor     map[series]float64
	floorFrom any
}

func newFamily(desc *prometheus.Desc, extras int, pairs *labelPairs) *family {
	text := familyText[desc]
	return &family{desc: desc, extras: extras, samples: map[series]*sample{}, admitted: map[series]bool{},
		metrics: map[series]*dto.Metric{}, pairs: pairs,
		out: dto.MetricFamily{Name: &text[0], Help: &text[1]}}
}

// add adds v to the series of cgroup cg with the value extra of the
// metric's own label (extraValues of them, for several).
// Several cgroup ids can share a path (a cgroup removed and made again).
func (f *family) add(cg *cgroup, extra string, v float64) {
	k := series{cg.path, strings.ToValidUTF8(extra, "\uFFFD")}
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

func compareSeries(a, b series) int {
	return cmp.Or(cmp.Compare(a.path, b.path), cmp.Compare(a.extra, b.extra))
}

// build makes the scrape's series, at most max of them plus one "other"
// per extra label value, into f.out (nil when there are none), and clears
// the samples. Series new to this scrape get their places in path order;
// the others keep theirs.
func (f *family) build(max int) *dto.MetricFamily {
	var fresh []series
	for k := range f.samples {
		if _, ok := f.admitted[k]; !ok {
			fresh = append(fresh, k)
		}
	}
	slices.SortFunc(fresh, compareSeries)
	for _, k := range fresh {
		f.admit(k, max)
	}
	// What is not admitted is summed into "other", by extra label value.
	sent := make(map[series]*sample, len(f.samples))
	for k, s := range f.samples {
		if f.admitted[k] {
			sent[k] = s
			continue
		}
		ok := series{otherCgroup, k.extra}
		o, found := sent[ok]
		if !found {
			o = &sample{cg: &cgroup{path: otherCgroup}}
			if s.hist != nil {
				o.hist = &histogram{}
			}
			sent[ok] = o
		}
		o.value += s.value
		if s.hist != nil {
			o.hist.add(s.hist)
		}
	}
	var added []series
	for k := range sent {
		if _, ok := f.metrics[k]; !ok {
			added = append(added, k)
		}
	}
	if len(added) > 0 {
		slices.SortFunc(added, compareSeries)
		for _, k := range added {
			f.metrics[k] = &dto.Metric{Label: f.pairs.make(f.desc, f.values(sent[k].cg, k))}
		}
		f.order = mergeSorted(f.order, added)
	}
	f.out.Metric = f.out.Metric[:0]
	for _, k := range f.order {
		if s, ok := sent[k]; ok {
			f.out.Metric = append(f.out.Metric, f.set(k, s))
		}
	}
	clear(f.samples)
	if len(f.out.Metric) == 0 {
		return nil
	}
	return &f.out
}

// mergeSorted merges b (sorted, none in a) into a (sorted).
func mergeSorted(a, b []series) []series {
	out := make([]series, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if compareSeries(a[0], b[0]) < 0 {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// values are the label values of series k, cgroup cg's.
func (f *family) values(cg *cgroup, k series) []string {
	c := cg.ctr
	v := []string{k.path, c.ID, c.Runtime, c.PodUID}
	if f.extras > 0 {
		v = append(v, strings.SplitN(k.extra, extraSep, f.extras)...)
	}
	return v
}

// set puts s, the sample of series k, into k's metric and returns it.
func (f *family) set(k series, s *sample) *dto.Metric {
	m := f.metrics[k]
	if f.out.Type == nil { // one type per family, made once
		f.out.Type = dto.MetricType_COUNTER.Enum()
		if s.hist != nil {
			f.out.Type = dto.MetricType_HISTOGRAM.Enum()
		}
	}
	if s.hist != nil {
		m.Histogram = s.hist.dto()
		return m
	}
	value := s.value
	if f.floor != nil {
		value = max(value, f.floor[k])
		f.floor[k] = value
	}
	if m.Counter == nil {
		m.Counter = &dto.Counter{Value: new(float64)}
	}
	*m.Counter.Value = value
	return m
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

// dto is the histogram as Prometheus's data model has it, its count and
// sum, and the kernel's log2 slots as cumulative buckets in order. Slot i
// counts waits of floor(log2(µs)) = i, that is under 2^(i+1) µs: its
// upper bound. The last slot also holds everything longer: +Inf only.
func (h *histogram) dto() *dto.Histogram {
	count, sum := h.count(), float64(h.sumNs)/1e9
	out := &dto.Histogram{SampleCount: &count, SampleSum: &sum}
	var n uint64
	for i, c := range h.slots[:len(h.slots)-1] {
		n += c
		out.Bucket = append(out.Bucket, &dto.Bucket{UpperBound: new(math.Ldexp(1e-6, i+1)), CumulativeCount: new(n)})
	}
	return out
}

func (h *histogram) count() uint64 {
	var n uint64
	for _, c := range h.slots {
		n += c
	}
	return n
}

// buckets are dto's buckets as prometheus.MustNewConstHistogram takes
// them: cumulative count by upper bound.
func (h *histogram) buckets() map[float64]uint64 {
	b := map[float64]uint64{}
	for _, bucket := range h.dto().Bucket {
		b[bucket.GetUpperBound()] = bucket.GetCumulativeCount()
	}
	return b
}
