// Package schedrecord records every context switch and wakeup of every CPU
// and writes them as a timeline in the trace-event JSON format that
// Perfetto (ui.perfetto.dev) and chrome://tracing open: one track per CPU,
// a slice for each time a task ran there, named by the task, and an
// instant for each wakeup. Slices are written as they end, so memory stays
// small whatever the length; a cap on the events written bounds the file.
package schedrecord

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// Tool describes sched record to its command, to `bpfkit check` and to serve.
var Tool = tool.Descriptor{
	Name:    "sched record",
	Kind:    tool.Stream,
	Summary: "Record every context switch and wakeup into a trace for Perfetto",
	Spec:    loadSchedrecord,
	Hooks: loader.Options{Alternatives: [][]string{
		{"sched_switch_btf", "sched_switch_raw"},
		{"sched_wakeup_btf", "sched_wakeup_raw"},
		{"sched_wakeup_new_btf", "sched_wakeup_new_raw"},
	}},
}

// Config selects what is recorded.
type Config struct {
	Wakeups   bool   // also record wakeups (instants on the waker's CPU)
	MaxEvents uint64 // stop after writing this many trace events; 0 is no cap
	RingSize  int    // bytes; 0 for loader.DefaultRingSize
	Debug     bool
}

// DefaultMaxEvents caps a recording at about 150 MB of JSON.
const DefaultMaxEvents = 1_000_000

// Stats tell what a recording saw and wrote.
type Stats struct {
	Switches, Wakeups uint64 // events read from the kernel
	Written           uint64 // trace events written (slices and instants)
	Lost              uint64 // events the ring buffer had no room for
	Capped            bool   // MaxEvents was reached: the recording stopped early
}

// Recorder is attached from New until Close.
type Recorder struct {
	objs *loader.Objects
	cfg  Config
	base uint64 // CLOCK_MONOTONIC ns before attaching: the timeline's 0
}

// New loads the programs and attaches them; events queue from now.
func New(cfg Config) (*Recorder, error) {
	spec, err := loadSchedrecord()
	if err != nil {
		return nil, err
	}
	var knobs schedrecordVariableSpecs
	if err := spec.Assign(&knobs); err != nil {
		return nil, err
	}
	if err := knobs.WantWakeups.Set(cfg.Wakeups); err != nil {
		return nil, fmt.Errorf("configure sched record: %w", err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return nil, fmt.Errorf("read the monotonic clock: %w", err)
	}
	objs, err := Tool.Load(spec, loader.Options{
		RingSize: cfg.RingSize,
		Debug:    cfg.Debug,
	})
	if err != nil {
		return nil, err
	}
	return &Recorder{objs: objs, cfg: cfg, base: uint64(ts.Nano())}, nil
}

// Close detaches and frees everything.
func (r *Recorder) Close() error { return r.objs.Close() }

// Health reports the records the ring had no room for, the runs the
// kernel skipped (switches and wakeups not seen) and the hooks this kernel
// lacks.
func (r *Recorder) Health() loader.Health { return r.objs.Health() }

// Values of sched_event's kind (enum sched_event_kind in bpf/schedrecord.h).
const (
	kindSwitch    = uint32(schedrecordSchedEventKindSCHED_SWITCH)
	kindWakeup    = uint32(schedrecordSchedEventKindSCHED_WAKEUP)
	kindWakeupNew = uint32(schedrecordSchedEventKindSCHED_WAKEUP_NEW)
)

// running is what a CPU runs since when.
type running struct {
	since     uint64
	tid, pid  uint32
	comm      [16]int8
	known     bool // false until the CPU's first switch: since is the start
	announced bool // the CPU's track has its name
}

// Record writes the timeline to w until ctx ends (or the cap is reached);
// lost, if not nil, is called when the kernel starts losing events.
func (r *Recorder) Record(ctx context.Context, w io.Writer, lost func(total uint64)) (Stats, error) {
	tl := newTimeline(w, r.base, r.cfg.MaxEvents)
	ss, err := r.objs.Stream(ctx, loader.StreamOptions{Lost: lost}, tl.handle)
	tl.st.Lost = ss.Lost
	if ferr := tl.finish(); err == nil {
		err = ferr
	}
	return tl.st, err
}

// timeline turns ring buffer records into trace events.
type timeline struct {
	tw        *writer
	cpus      map[uint32]*running
	last      uint64 // the latest event's time
	maxEvents uint64
	e         schedrecordSchedEvent
	st        Stats
}

func newTimeline(w io.Writer, base, maxEvents uint64) *timeline {
	tw := &writer{w: bufio.NewWriterSize(w, 1<<20), base: base}
	tw.raw(`{"displayTimeUnit":"ns","traceEvents":[` + "\n")
	tw.raw(`{"name":"process_name","ph":"M","pid":0,"args":{"name":"CPUs"}}`)
	return &timeline{tw: tw, cpus: map[uint32]*running{}, last: base, maxEvents: maxEvents}
}

// handle decodes one record and writes what it ends: the slice of the task
// switched out, or a wakeup.
func (tl *timeline) handle(raw []byte) error {
	e, tw := &tl.e, tl.tw
	if len(raw) < int(unsafe.Sizeof(*e)) {
		return fmt.Errorf("short sched record: %d bytes", len(raw))
	}
	*e = *(*schedrecordSchedEvent)(unsafe.Pointer(&raw[0]))
	tl.last = max(tl.last, e.Ts)
	cpu := tl.cpus[e.Cpu]
	if cpu == nil {
		cpu = &running{since: tw.base}
		tl.cpus[e.Cpu] = cpu
	}
	if !cpu.announced {
		tw.cpuName(e.Cpu)
		cpu.announced = true
	}
	switch e.Kind {
	case kindSwitch:
		tl.st.Switches++
		if e.PrevTid != 0 {
			tw.slice(e.Cpu, cpu.since, e.Ts, e.PrevTid, e.PrevPid, e.PrevComm[:], e.PrevState)
		}
		*cpu = running{since: e.Ts, tid: e.NextTid, pid: e.NextPid, comm: e.NextComm, known: true, announced: true}
	case kindWakeup, kindWakeupNew:
		tl.st.Wakeups++
		tw.wakeup(e.Cpu, e.Ts, e.NextTid, e.NextPid, e.NextComm[:], e.Kind == kindWakeupNew)
	}
	if tl.maxEvents > 0 && tw.written >= tl.maxEvents {
		tl.st.Capped = true
		return loader.ErrStop
	}
	return tw.err
}

// finish closes the slices still running at the end and the JSON.
func (tl *timeline) finish() error {
	tw := tl.tw
	for c, cpu := range tl.cpus {
		if cpu.known && cpu.tid != 0 {
			tw.slice(c, cpu.since, tl.last, cpu.tid, cpu.pid, cpu.comm[:], 0)
		}
	}
	tw.raw("\n]}\n")
	tl.st.Written = tw.written
	if err := tw.w.Flush(); err != nil {
		return err
	}
	return tw.err
}

// writer appends trace events (JSON objects) to a buffered writer.
type writer struct {
	w       *bufio.Writer
	base    uint64
	written uint64
	buf     []byte
	name    []byte
	err     error
}

func (t *writer) raw(s string) {
	if _, err := t.w.WriteString(s); err != nil && t.err == nil {
		t.err = err
	}
}

func (t *writer) flush() {
	if _, err := t.w.Write(t.buf); err != nil && t.err == nil {
		t.err = err
	}
}

// appendTS appends a timestamp as µs since base.
func (t *writer) appendTS(b []byte, ts uint64) []byte {
	return appendUS(b, ts-min(ts, t.base))
}

// appendUS appends ns as µs with three decimals.
func appendUS(b []byte, ns uint64) []byte {
	b = strconv.AppendUint(b, ns/1000, 10)
	frac := ns % 1000
	return append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

func (t *writer) cpuName(cpu uint32) {
	b := append(t.buf[:0], ",\n"+`{"name":"thread_name","ph":"M","pid":0,"tid":`...)
	b = strconv.AppendUint(b, uint64(cpu), 10)
	b = append(b, `,"args":{"name":"CPU `...)
	b = strconv.AppendUint(b, uint64(cpu), 10)
	b = append(b, `"}},`+"\n"+`{"name":"thread_sort_index","ph":"M","pid":0,"tid":`...)
	b = strconv.AppendUint(b, uint64(cpu), 10)
	b = append(b, `,"args":{"sort_index":`...)
	b = strconv.AppendUint(b, uint64(cpu), 10)
	t.buf = append(b, "}}"...)
	t.flush()
}

// appendTask appends "<prefix>comm (tid)" as a JSON string.
func (t *writer) appendTask(b []byte, prefix string, comm []int8, tid uint32) []byte {
	name := append(append(t.name[:0], prefix...), trace.CString(comm)...)
	name = append(name, " ("...)
	name = strconv.AppendUint(name, uint64(tid), 10)
	t.name = append(name, ')')
	return output.AppendJSONString(b, t.name)
}

func appendTaskArgs(b []byte, tid, pid uint32, comm []int8) []byte {
	b = append(b, `"args":{"tid":`...)
	b = strconv.AppendUint(b, uint64(tid), 10)
	b = append(b, `,"pid":`...)
	b = strconv.AppendUint(b, uint64(pid), 10)
	b = append(b, `,"comm":`...)
	return output.AppendJSONString(b, trace.CString(comm))
}

// slice writes a task's run on a CPU from since to end; state is how it
// left (-1 preempted), shown as end_state.
func (t *writer) slice(cpu uint32, since, end uint64, tid, pid uint32, comm []int8, state int64) {
	b := append(t.buf[:0], ",\n"+`{"ph":"X","cat":"sched","pid":0,"tid":`...)
	b = strconv.AppendUint(b, uint64(cpu), 10)
	b = append(b, `,"name":`...)
	b = t.appendTask(b, "", comm, tid)
	b = append(b, `,"ts":`...)
	b = t.appendTS(b, since)
	b = append(b, `,"dur":`...)
	b = appendUS(b, end-min(since, end))
	b = append(b, ',')
	b = appendTaskArgs(b, tid, pid, comm)
	b = append(b, `,"end_state":"`...)
	b = append(b, stateName(state)...)
	t.buf = append(b, `"}}`...)
	t.written++
	t.flush()
}

// wakeup writes an instant on the waker's CPU.
func (t *writer) wakeup(cpu uint32, ts uint64, tid, pid uint32, comm []int8, isNew bool) {
	b := append(t.buf[:0], ",\n"+`{"ph":"i","s":"t","cat":"wakeup","pid":0,"tid":`...)
	b = strconv.AppendUint(b, uint64(cpu), 10)
	b = append(b, `,"name":`...)
	prefix := "wakeup "
	if isNew {
		prefix = "wakeup_new "
	}
	b = t.appendTask(b, prefix, comm, tid)
	b = append(b, `,"ts":`...)
	b = t.appendTS(b, ts)
	b = append(b, ',')
	b = appendTaskArgs(b, tid, pid, comm)
	t.buf = append(b, `}}`...)
	t.written++
	t.flush()
}

// stateName is the letter ps shows for how a task left the CPU.
func stateName(state int64) string {
	switch {
	case state == -1:
		return "R+" // preempted
	case state == 0:
		return "R"
	case state&1 != 0:
		return "S"
	case state&2 != 0:
		return "D"
	case state&4 != 0:
		return "T"
	case state&8 != 0:
		return "t"
	case state&0x20 != 0 || state&0x10 != 0:
		return "Z"
	}
	return "?"
}
