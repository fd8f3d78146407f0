// Package zombies reports every process from the moment it becomes a
// zombie (its last thread exited) to the moment its parent reaps it with
// wait4(2) or waitid(2), and lists the zombies present now.
package zombies

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
	"github.com/bpfkit/bpfkit/pkg/trace"
	"github.com/bpfkit/bpfkit/pkg/trace/execsnoop"
)

// Tool describes zombies to its command, to `bpfkit check` and to serve.
var Tool = tool.Descriptor{
	Name:    "zombies",
	Kind:    tool.Stream,
	Summary: "Show every process from its exit to being reaped by its parent, and the zombies there now",
	Spec:    loadZombies,
	Hooks:   loader.Options{Alternatives: [][]string{{zombiesProgSchedProcessFreeBtf, zombiesProgSchedProcessFreeRaw}}}, // sched_process_free: BTF tracepoint, else raw
}

// Config chooses the zombies reported.
type Config struct {
	Filter   loader.TaskFilter // the exiting process: pid, name, cgroup
	PPID     uint32            // only those reaped by this process
	Over     time.Duration     // only those left unreaped longer
	RingSize int               // bytes; 0 for loader.DefaultRingSize
	Debug    bool              // full verifier log on rejection
}

// Event is one reaped zombie.
type Event struct {
	Time       time.Time // when it was reaped
	PID        uint32
	PPID       uint32 // the process that reaped it
	Comm       []byte
	ParentComm []byte
	ExitCode   int            // the status given to exit(2); 0 when killed
	Signal     syscall.Signal // the signal that killed it, 0 if none
	Zombie     time.Duration  // from its last thread's exit to the reap
}

// Status is the exit code as a shell shows it: 128+N when killed by N.
func (e *Event) Status() int {
	if e.Signal != 0 {
		return 128 + int(e.Signal)
	}
	return e.ExitCode
}

// Tracer reports from New until Close.
type Tracer struct {
	objs  *loader.Objects
	clock trace.Clock
	ev    Event
}

// New loads zombies' programs and attaches them.
func New(cfg Config) (*Tracer, error) {
	spec, err := loadZombies()
	if err != nil {
		return nil, err
	}
	var knobs zombiesVariableSpecs
	if err := spec.Assign(&knobs); err != nil {
		return nil, err
	}
	if err := errors.Join(knobs.MinZombieNs.Set(uint64(cfg.Over)), knobs.FilterPpid.Set(cfg.PPID)); err != nil {
		return nil, fmt.Errorf("configure zombies: %w", err)
	}
	vars, err := cfg.Filter.Variables()
	if err != nil {
		return nil, err
	}
	objs, err := Tool.Load(spec, loader.Options{
		Variables: vars, RingSize: cfg.RingSize, Debug: cfg.Debug,
	})
	if err != nil {
		return nil, err
	}
	return &Tracer{objs: objs, clock: trace.NewClock()}, nil
}

// Dropped lists the hooks this kernel lacks.
func (t *Tracer) Dropped() map[string]error { return t.objs.Dropped }

// Health reports the records the ring had no room for, the runs the
// kernel skipped and the hooks this kernel lacks.
func (t *Tracer) Health() loader.Health { return t.objs.Health() }

// Close detaches and frees everything.
func (t *Tracer) Close() error { return t.objs.Close() }

// Run streams reaped zombies to emit until ctx ends or emit fails
// (loader.ErrStop ends it without an error). Stats.Lost also counts
// zombies not remembered because the kernel's table was full.
func (t *Tracer) Run(ctx context.Context, opts loader.StreamOptions, emit func(*Event) error) (loader.Stats, error) {
	return t.objs.Stream(ctx, opts, func(raw []byte) error {
		if err := decode(&t.ev, raw, t.clock); err != nil {
			return err
		}
		return emit(&t.ev)
	})
}

const recordSize = int(unsafe.Sizeof(zombiesZombieEvent{}))

func decode(e *Event, raw []byte, clock trace.Clock) error {
	if len(raw) < recordSize {
		return fmt.Errorf("short zombies record: %d bytes", len(raw))
	}
	h := (*zombiesZombieEvent)(unsafe.Pointer(&raw[0]))
	e.Time = clock.Time(h.BootNs)
	e.PID, e.PPID = h.Pid, h.Ppid
	e.Comm = trace.CString(h.Comm[:])
	e.ParentComm = trace.CString(h.ParentComm[:])
	e.ExitCode, e.Signal, _ = execsnoop.DecodeStatus(h.Status)
	e.Zombie = time.Duration(h.ZombieNs)
	return nil
}

// Present is a zombie found in /proc.
type Present struct {
	PID, PPID  uint32
	Comm       string
	ParentComm string
	Age        time.Duration // since the process started: when it exited is not kept
}

// Now lists the zombies in /proc, oldest first.
func Now() ([]Present, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	uptime, err := bootTime()
	if err != nil {
		return nil, err
	}
	var out []Present
	for _, d := range dirs {
		st, ok := readStat(d)
		if !ok || st.state != 'Z' {
			continue
		}
		parent, _ := readStat(fmt.Sprintf("/proc/%d/stat", st.ppid))
		out = append(out, Present{
			PID: st.pid, PPID: st.ppid, Comm: st.comm, ParentComm: parent.comm,
			Age: uptime - time.Duration(st.start)*time.Second/time.Duration(clockTicks),
		})
	}
	slices.SortFunc(out, func(a, b Present) int { return int(b.Age - a.Age) })
	return out, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's start time: 100 on
// every Linux architecture bpfkit runs on (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

type procStat struct {
	pid, ppid uint32
	comm      string
	state     byte
	start     uint64 // clock ticks after boot
}

// readStat parses /proc/PID/stat: "pid (comm) S ppid ..." (comm may hold
// spaces and parentheses: it ends at the last ')').
func readStat(path string) (procStat, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return procStat{}, false
	}
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open || end+2 >= len(b) {
		return procStat{}, false
	}
	pid, err := strconv.ParseUint(string(bytes.TrimSpace(b[:open])), 10, 32)
	f := bytes.Fields(b[end+2:])
	if err != nil || len(f) < 20 {
		return procStat{}, false
	}
	ppid, _ := strconv.ParseUint(string(f[1]), 10, 32)
	start, _ := strconv.ParseUint(string(f[19]), 10, 64)
	return procStat{pid: uint32(pid), ppid: uint32(ppid), comm: string(b[open+1 : end]), state: f[0][0], start: start}, true
}

// bootTime is how long the machine has been up (CLOCK_BOOTTIME, which
// /proc/PID/stat's start time counts from).
func bootTime() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}
