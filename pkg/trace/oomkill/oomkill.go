// Package oomkill reports every OOM kill: the victim, the task whose
// allocation called the OOM killer (the trigger), their memory cgroups, and
// the victim's memory figures where the kernel's tracepoint gives them.
package oomkill

import (
	"context"
	"fmt"
	"time"
	"unsafe"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// Tool describes oomkill to its command, to `bpfkit check` and to serve.
var Tool = tool.Descriptor{
	Name:    "oomkill",
	Kind:    tool.Stream,
	Summary: "Show every OOM kill: the victim, the task that triggered it, its memory cgroup and figures",
	Spec:    loadOomkill,
}

// Config configures the tracer.
type Config struct {
	RingSize int  // bytes; 0 for loader.DefaultRingSize
	Debug    bool // full verifier log on rejection
}

// Event is one OOM kill.
type Event struct {
	Time time.Time
	// PID is the victim thread the kernel names ("Killed process PID"),
	// TGID its process (0 if the kill's signal was not seen), Comm its name.
	PID, TGID uint32
	Comm      []byte
	// Cgroup is the trigger's memory cgroup (the limit hit is its own or an
	// ancestor's), VictimCgroup the victim's: paths below the mount of the
	// memory controller's hierarchy (cgroup v1 or v2), "" without memcg.
	Cgroup, VictimCgroup string
	// The task that called the OOM killer.
	TriggerPID, TriggerTID uint32
	TriggerComm            []byte
	// Figures is true when the kernel's oom:mark_victim has them (its
	// record grew: not on 5.10, on Debian's 6.1 and later in the matrix);
	// sizes in bytes.
	Figures                                       bool
	TotalVM, AnonRSS, FileRSS, ShmemRSS, PgTables uint64
	UID                                           uint32
	OOMScoreAdj                                   int16
}

// Tracer reports from New until Close.
type Tracer struct {
	objs   *loader.Objects
	clock  trace.Clock
	memcgs *Memcgs
	ev     Event
}

// New loads oomkill's programs and attaches them.
func New(cfg Config) (*Tracer, error) {
	memcgs, err := NewMemcgs()
	if err != nil {
		return nil, err
	}
	spec, err := Tool.Spec()
	if err != nil {
		return nil, err
	}
	objs, err := Tool.Load(spec, loader.Options{RingSize: cfg.RingSize, Debug: cfg.Debug})
	if err != nil {
		return nil, err
	}
	return &Tracer{objs: objs, clock: trace.NewClock(), memcgs: memcgs}, nil
}

// Dropped lists the hooks this kernel lacks.
func (t *Tracer) Dropped() map[string]error { return t.objs.Dropped }

// Close detaches and frees everything.
func (t *Tracer) Close() error { return t.objs.Close() }

// Run streams OOM kills to emit until ctx ends or emit fails (loader.ErrStop
// ends it without an error).
func (t *Tracer) Run(ctx context.Context, opts loader.StreamOptions, emit func(*Event) error) (loader.Stats, error) {
	return t.objs.Stream(ctx, opts, func(raw []byte) error {
		if err := decode(&t.ev, raw, t.clock); err != nil {
			return err
		}
		r := (*oomkillOomEvent)(unsafe.Pointer(&raw[0]))
		t.ev.Cgroup, t.ev.VictimCgroup = t.memcgs.Path(r.TriggerMemcg), t.memcgs.Path(r.VictimMemcg)
		return emit(&t.ev)
	})
}

const recordSize = int(unsafe.Sizeof(oomkillOomEvent{}))

func decode(e *Event, raw []byte, clock trace.Clock) error {
	if len(raw) < recordSize {
		return fmt.Errorf("short oomkill record: %d bytes", len(raw))
	}
	r := (*oomkillOomEvent)(unsafe.Pointer(&raw[0]))
	*e = Event{
		Time: clock.Time(r.BootNs),
		PID:  r.Pid, TGID: r.Tgid, Comm: trace.CString(r.Comm[:]),
		TriggerPID: r.TriggerPid, TriggerTID: r.TriggerTid, TriggerComm: trace.CString(r.TriggerComm[:]),
		Figures: r.Figures != 0,
	}
	if e.Figures {
		e.TotalVM, e.AnonRSS, e.FileRSS, e.ShmemRSS, e.PgTables = r.TotalVm<<10, r.AnonRss<<10, r.FileRss<<10, r.ShmemRss<<10, r.Pgtables<<10
		e.UID, e.OOMScoreAdj = r.Uid, r.OomScoreAdj
	}
	return nil
}
