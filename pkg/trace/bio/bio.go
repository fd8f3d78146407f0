// Package bio traces block I/O requests from start to completion, for
// three tools that share one BPF object (bpf/bio.bpf.c):
//
//   - Latency (biolatency): log2 histograms of request latency, per disk
//     and per request flags on demand;
//   - Snoop (biosnoop): one Event per completed request;
//   - Top (biotop): reads, writes, bytes and latency per process and disk.
//
// Attribution: the pid, name and cgroup of a request are those of the task
// that submitted it, taken at its start (block_io_start on 6.5+, else
// block_rq_insert, or block_rq_issue for a request the driver takes
// without it being inserted), in that task's context, and carried to the
// completion. Requests a kernel thread submits (writeback, journal
// commits, loop and dm workers) are reported with pid 0 and the kernel
// thread's name.
//
// Counting: a request is counted once, when it completes. A requeued
// request keeps its start, submitter, first sector and size; a request
// merged into another ends with that one. A completion whose start was not
// seen (the request was there when tracing began: before 6.5, allocated
// before the last program was attached, as rq->start_time_ns says) is
// counted in Stats.NoStart only; for biolatency without -Q (from the
// issue), a request issued before. The kernel's own flush requests (made
// by the flush machinery for REQ_PREFLUSH writes) have no start on 6.5+
// and land in NoStart too.
//
// Devices are named as /proc/partitions names them: a request for a
// partition is reported for the partition (sda1), others for the disk.
// Sectors are counted from the start of the disk, as blktrace does.
package bio

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf/btf"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
)

// Biotop describes biotop to its command, to `bpfkit check` and to serve.
var Biotop = tool.Descriptor{
	Name:    "biotop",
	Kind:    tool.Sampler,
	Summary: "Show the processes doing the most block I/O, per disk, like top",
	Spec:    loadBio,
	Hooks:   loader.Options{Alternatives: Alternatives},
}

// Biosnoop describes biosnoop to its command, to `bpfkit check` and to serve.
var Biosnoop = tool.Descriptor{
	Name:    "biosnoop",
	Kind:    tool.Stream,
	Summary: "Trace block I/O requests as they complete: who, which disk, how long",
	Spec:    loadBio,
	Hooks:   loader.Options{Alternatives: Alternatives},
}

// Biolatency describes biolatency to its command, to `bpfkit check` and to serve.
var Biolatency = tool.Descriptor{
	Name:    "biolatency",
	Kind:    tool.Sampler,
	Summary: "Histograms of block I/O latency, per disk and request type on demand",
	Spec:    loadBio,
	Hooks:   loader.Options{Alternatives: Alternatives},
}

// Config selects what is traced. Every filter runs in the kernel.
type Config struct {
	// Filter selects submitters (applied at the start, in the
	// submitter's context): PID, TID, UID, Comm, Cgroup.
	Filter loader.TaskFilter
	// Disk is a disk or partition name as /proc/partitions lists it
	// (sda, nvme0n1p2, loop3); a disk matches its partitions too.
	Disk string
	// Queued measures latency from the start (time queued in the OS
	// included), not from the issue to the driver.
	Queued       bool
	Milliseconds bool // histogram buckets in ms, not µs
	ByDisk       bool // one histogram per device
	ByFlags      bool // one histogram per request flags (rwbs)
	// MinLatency leaves out faster requests (Snoop).
	MinLatency time.Duration
	RingSize   int // Snoop's ring buffer, bytes; 0 for loader.DefaultRingSize
	Debug      bool
}

// Slots is the number of log2 buckets of a histogram (BIO_SLOTS in bpf/bio.h).
const Slots = len(bioBioHist{}.Slots)

// Stats count requests since the tool started.
type Stats struct {
	Done      uint64 // selected requests completed and counted
	NoStart   uint64 // completed with no start seen: in flight when tracing began
	StartFull uint64 // starts not recorded: the start table (16384 requests in flight) was full
	HistFull  uint64 // latencies not recorded: the histogram table (4096 keys) was full
	TopFull   uint64 // completions not counted: the biotop table (10240 rows) was full
	Requeued  uint64 // requeues of selected requests seen (each request is counted once)
	Lost      uint64 // events the ring buffer had no room for
	// Missed counts hook runs the kernel skipped because a BPF program
	// was already running on that CPU (loader.Objects.Missed).
	Missed uint64
}

// NotCounted is how many requests were left out because a table was
// full, for a warning.
func (s Stats) NotCounted() uint64 { return s.StartFull + s.HistFull + s.TopFull + s.Lost }

// The modes of the one object (enum bio_mode in bpf/bio.h).
const (
	modeHist   = bioBioModeMODE_HIST
	modeEvents = bioBioModeMODE_EVENTS
	modeTop    = bioBioModeMODE_TOP
)

// Alternatives are the hooks of each step, best first: block_io_start and
// block_io_done (6.5+) else block_rq_insert and block_rq_complete, as BTF
// tracepoints else raw ones.
var Alternatives = [][]string{
	{"block_io_start_btf", "block_io_start_raw", "block_rq_insert_btf", "block_rq_insert_raw"},
	{"block_io_done_btf", "block_io_done_raw", "block_rq_complete_btf", "block_rq_complete_raw"},
	{"block_rq_issue_btf", "block_rq_issue_raw"},
	{"block_rq_requeue_btf", "block_rq_requeue_raw"},
	{"block_rq_merge_btf", "block_rq_merge_raw"},
}

// issueAlternatives are the hooks biolatency needs when it measures from
// the issue and filters no task.
var issueAlternatives = [][]string{Alternatives[1], Alternatives[2]}

// tracer is what the three tools share: the loaded object, device names
// and the kernel's request flag bits.
type tracer struct {
	objs  *loader.Objects
	maps  bioMaps
	disks *Disks
	flags reqFlags
}

func newTracer(cfg Config, mode bioBioMode, ringSize int) (*tracer, error) {
	disks := NewDisks()
	var dev uint32
	whole := false
	if cfg.Disk != "" {
		d, err := disks.Lookup(cfg.Disk)
		if err != nil {
			return nil, err
		}
		dev, whole = d.Dev, d.Whole
	}
	spec, err := loadBio()
	if err != nil {
		return nil, err
	}
	vars, err := cfg.Filter.Variables()
	if err != nil {
		return nil, err
	}
	if err := loader.Preflight(); err != nil {
		return nil, err
	}
	flags := kernelReqFlags()
	// biolatency without -Q and without a task filter measures from the
	// issue and attributes nothing: it needs neither the start hook nor
	// the requeue and merge ones, which only keep starts right.
	alternatives := Alternatives
	atIssue := mode == modeHist && !cfg.Queued && cfg.Filter == (loader.TaskFilter{})
	if atIssue {
		alternatives = issueAlternatives
		for _, group := range [][]string{Alternatives[0], Alternatives[3], Alternatives[4]} {
			for _, name := range group {
				delete(spec.Programs, name)
			}
		}
	}
	var knobs bioVariableSpecs
	if err := spec.Assign(&knobs); err != nil {
		return nil, err
	}
	var flagsMask uint32 // the object's default: no histogram per flags
	if cfg.ByFlags {
		flagsMask = flags.mask()
	}
	if err := errors.Join(
		knobs.StartAtIssue.Set(atIssue),
		knobs.Mode.Set(uint32(mode)),
		knobs.HaveIoStart.Set(haveIOStart()),
		knobs.RqArg.Set(rqArg()),
		knobs.InMs.Set(cfg.Milliseconds),
		knobs.Queued.Set(cfg.Queued),
		knobs.ByDisk.Set(cfg.ByDisk),
		knobs.FlagsMask.Set(flagsMask),
		knobs.FilterDev.Set(dev),
		knobs.FilterWholeDisk.Set(whole),
		knobs.MinNs.Set(uint64(cfg.MinLatency)),
	); err != nil {
		return nil, fmt.Errorf("configure bio: %w", err)
	}
	objs, err := loader.Load(spec, loader.Options{
		Variables:    vars,
		RingSize:     ringSize,
		Debug:        cfg.Debug,
		Alternatives: alternatives,
	})
	if err != nil {
		return nil, err
	}
	t := &tracer{objs: objs, disks: disks, flags: flags}
	if err := objs.Assign(&t.maps); err != nil {
		objs.Close()
		return nil, err
	}
	return t, nil
}

// rqArg is where the request is among the arguments of block_rq_insert,
// issue, requeue and merge: second before 5.11 (after the queue).
func rqArg() uint32 {
	spec, err := loader.KernelBTF()
	if err != nil {
		return 0
	}
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_block_rq_issue", &td); err != nil {
		return 0
	}
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return 0
	}
	if fp, ok := ptr.Target.(*btf.FuncProto); ok && len(fp.Params) == 3 {
		return 1 // (void *data, struct request_queue *q, struct request *rq)
	}
	return 0
}

// Close detaches and frees everything.
func (t *tracer) Close() error { return t.objs.Close() }

// Dropped lists the hooks this kernel lacks (block_rq_merge before 5.9...).
func (t *tracer) Dropped() map[string]error { return t.objs.Dropped }

// Stats returns the counters since the tool started.
func (t *tracer) Stats() (Stats, error) {
	var st Stats
	var perCPU []uint64
	for slot, dst := range map[bioBioStat]*uint64{
		bioBioStatSTAT_DONE:       &st.Done,
		bioBioStatSTAT_NO_START:   &st.NoStart,
		bioBioStatSTAT_START_FULL: &st.StartFull,
		bioBioStatSTAT_HIST_FULL:  &st.HistFull,
		bioBioStatSTAT_TOP_FULL:   &st.TopFull,
		bioBioStatSTAT_REQUEUED:   &st.Requeued,
	} {
		if err := t.maps.Stats.Lookup(uint32(slot), &perCPU); err != nil {
			return st, fmt.Errorf("read bio stats: %w", err)
		}
		for _, v := range perCPU {
			*dst += v
		}
	}
	st.Lost = t.objs.Lost()
	st.Missed = t.objs.Missed()
	return st, nil
}
