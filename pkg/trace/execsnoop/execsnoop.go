// Package execsnoop traces process lifetimes: every exec (execve and
// execveat, successful or not, with its whole argv) and every exit (status,
// signal, lifetime). Both tracers share one BPF object and one ring buffer,
// so events arrive in the order they happened: never a child's exec before
// its parent's.
package execsnoop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// ExitTool describes exitsnoop to its command, to `bpfkit check` and to serve.
var ExitTool = tool.Descriptor{
	Name:    "exitsnoop",
	Kind:    tool.Stream,
	Summary: "Trace every process exit: status, signal, core dump, lifetime and command line",
	Spec:    ExitSpec,
	Hooks:   loader.Options{},
}

// ExecTool describes execsnoop to its command, to `bpfkit check` and to serve.
var ExecTool = tool.Descriptor{
	Name:    "execsnoop",
	Kind:    tool.Stream,
	Summary: "Trace every exec (execve and execveat), successful or not, with its whole argv",
	Spec:    ExecSpec,
	Hooks:   loader.Options{},
}

// DefaultRingSize is the event ring's size unless Config.RingSize says
// otherwise: smaller than loader.DefaultRingSize, since execs are far rarer
// than opens; 4 MiB still holds over 20,000 typical execs, or 128 with the
// largest argv, between two reads. (The reader maps the ring twice, so its
// size shows twice in RSS.)
const DefaultRingSize = 4 << 20

// FlushEvery is how long an event may wait in the ring for the reader
// unless StreamOptions say otherwise. Execs are rare next to opens, so the
// reader wakes less often than loader's 10ms: measured here, polling every
// 10ms cost the idle tracer 11ms of CPU a second, every 50ms 2ms, and 50ms
// is still instant to a person watching.
const FlushEvery = 50 * time.Millisecond

// Limits on the bytes of argv read per exec.
const (
	DefaultArgsLimit = 32 << 10
	MaxArgsLimit     = int(execsnoopExecsnoopLimitsARGS_MAX)
)

// Config selects which execs are traced. Every filter but Line runs in the
// kernel.
type Config struct {
	Filter     loader.TaskFilter // the exec'ing task: its pid, uid, name (the new one on success), cgroup
	PPID       uint32            // only children of this process
	FailedOnly bool              // only execs that failed
	Cwd        bool              // report the working directory
	ArgsLimit  int               // bytes of argv per event; 0 for DefaultArgsLimit
	Line       string            // only execs whose argument line (args joined by spaces) contains this
	RingSize   int               // bytes; 0 for DefaultRingSize
	Debug      bool              // full verifier log on rejection
}

// Event is one exec. The byte slices point into buffers that are reused:
// they are valid only until the emit callback returns.
type Event struct {
	Time     time.Time
	PID      uint32
	PPID     uint32
	UID      uint32
	Comm     []byte   // the new name after a successful exec, the caller's after a failed one
	Filename []byte   // the file executed, as the kernel names it (/dev/fd/N for fexecve)
	Args     [][]byte // the whole argv, argv[0] first
	Ret      int32    // 0, or -errno of a failed exec
	Cwd      []byte   // with Config.Cwd only
	// Truncated means argv was longer than the limit: Args holds its first
	// ArgsLimit bytes, the last argument cut.
	Truncated         bool
	FilenameTruncated bool
	CwdTruncated      bool
}

// ExecSpec returns the BPF objects execsnoop loads, for `bpfkit check`.
func ExecSpec() (*ebpf.CollectionSpec, error) { return spec(execPrograms) }

// ExitSpec returns the BPF objects exitsnoop loads, for `bpfkit check`.
func ExitSpec() (*ebpf.CollectionSpec, error) { return spec(exitPrograms) }

// spec returns the BPF object with only the programs named in keep.
func spec(keep []string) (*ebpf.CollectionSpec, error) {
	cs, err := loadExecsnoop()
	if err != nil {
		return nil, err
	}
	for name := range cs.Programs {
		if !slices.Contains(keep, name) {
			delete(cs.Programs, name)
		}
	}
	return cs, nil
}

// Values of a record's kind and flags bytes (enum record_kind and
// exec_event_flags in bpf/execsnoop.h).
const (
	recordExec = uint8(execsnoopRecordKindRECORD_EXEC)
	recordExit = uint8(execsnoopRecordKindRECORD_EXIT)

	argsTruncated     = uint8(execsnoopExecEventFlagsARGS_TRUNCATED)
	filenameTruncated = uint8(execsnoopExecEventFlagsFILENAME_TRUNCATED)
	cwdTruncated      = uint8(execsnoopExecEventFlagsCWD_TRUNCATED)
)

const (
	execHeaderSize = int(unsafe.Sizeof(execsnoopExecEvent{}))
	exitHeaderSize = int(unsafe.Sizeof(execsnoopExitEvent{}))
)

// Programs each tracer needs; the others are left out before load.
var (
	execPrograms = []string{execsnoopProgExecDone, execsnoopProgEnterExecve, execsnoopProgEnterExecveat, execsnoopProgExitExecve, execsnoopProgExitExecveat}
	exitPrograms = []string{execsnoopProgExecDone, execsnoopProgTaskExit}
)

// load loads the programs named in keep with vars (the task filter) set,
// and the tool's own knobs set by knobs.
func load(keep []string, vars map[string]any, knobs func(*execsnoopVariableSpecs) error, argsLimit, ringSize int, debug bool) (*loader.Objects, error) {
	if argsLimit == 0 {
		argsLimit = DefaultArgsLimit
	}
	if argsLimit < 1 || argsLimit > MaxArgsLimit {
		return nil, fmt.Errorf("argv limit %d: must be from 1 to %d bytes", argsLimit, MaxArgsLimit)
	}
	if ringSize == 0 {
		ringSize = DefaultRingSize
	}
	cs, err := spec(keep)
	if err != nil {
		return nil, err
	}
	var specs struct {
		execsnoopMapSpecs
		execsnoopVariableSpecs
	}
	if err := cs.Assign(&specs); err != nil {
		return nil, err
	}
	if err := errors.Join(specs.ArgsLimit.Set(uint32(argsLimit)), knobs(&specs.execsnoopVariableSpecs)); err != nil {
		return nil, fmt.Errorf("configure execsnoop: %w", err)
	}
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("count possible CPUs: %w", err)
	}
	specs.ExecScratch.MaxEntries = uint32(cpus)
	return loader.Load(cs, loader.Options{Variables: vars, RingSize: ringSize, Debug: debug})
}

// Tracer is attached from New until Close.
type Tracer struct {
	objs  *loader.Objects
	clock trace.Clock
	line  []byte
	ev    Event
	buf   []byte
}

// New loads execsnoop's programs with cfg and attaches them.
func New(cfg Config) (*Tracer, error) {
	vars, err := cfg.Filter.Variables()
	if err != nil {
		return nil, err
	}
	knobs := func(k *execsnoopVariableSpecs) error {
		return errors.Join(k.OnlyFailedExecs.Set(cfg.FailedOnly), k.WantCwd.Set(cfg.Cwd), k.FilterPpid.Set(cfg.PPID))
	}
	objs, err := load(execPrograms, vars, knobs, cfg.ArgsLimit, cfg.RingSize, cfg.Debug)
	if err != nil {
		return nil, err
	}
	t := &Tracer{objs: objs, clock: trace.NewClock()}
	if cfg.Line != "" {
		t.line = []byte(cfg.Line)
	}
	return t, nil
}

// Dropped lists the hooks this kernel lacks.
func (t *Tracer) Dropped() map[string]error { return t.objs.Dropped }

// Run streams events to emit until ctx ends (then drains what is queued)
// or emit returns an error (loader.ErrStop ends it without one).
func (t *Tracer) Run(ctx context.Context, opts loader.StreamOptions, emit func(*Event) error) (loader.Stats, error) {
	if opts.FlushEvery == 0 {
		opts.FlushEvery = FlushEvery
	}
	return t.objs.Stream(ctx, opts, func(raw []byte) error {
		if len(raw) == 0 || raw[0] != recordExec {
			return nil
		}
		if err := decodeExec(&t.ev, raw, t.clock); err != nil {
			return err
		}
		if t.line != nil && !t.lineMatches() {
			return nil
		}
		return emit(&t.ev)
	})
}

// Close detaches and frees everything.
func (t *Tracer) Close() error { return t.objs.Close() }

// Health reports the records the ring had no room for, the times the
// kernel skipped one of the tracer's programs because another BPF program
// was running on that CPU (events lost before they were made; 0 where the
// kernel, before 5.12, does not count them) and the hooks it lacks.
func (t *Tracer) Health() loader.Health { return t.objs.Health() }

func (t *Tracer) lineMatches() bool {
	t.buf = AppendLine(t.buf[:0], t.ev.Args)
	return bytes.Contains(t.buf, t.line)
}

// AppendLine appends the arguments joined by spaces.
func AppendLine(b []byte, args [][]byte) []byte {
	for i, a := range args {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, a...)
	}
	return b
}

// decodeExec fills e from an exec record without allocating once e.Args
// has grown to the largest argc seen.
func decodeExec(e *Event, raw []byte, clock trace.Clock) error {
	if len(raw) < execHeaderSize {
		return fmt.Errorf("short exec record: %d bytes", len(raw))
	}
	h := (*execsnoopExecEvent)(unsafe.Pointer(&raw[0]))
	fnEnd := execHeaderSize + int(h.FilenameLen)
	cwdEnd := fnEnd + int(h.CwdLen)
	end := cwdEnd + int(h.ArgsLen)
	if end > len(raw) {
		return fmt.Errorf("exec record of %d bytes holds %d", len(raw), end)
	}
	e.Time = clock.Time(h.BootNs)
	e.PID, e.PPID, e.UID = h.Pid, h.Ppid, h.Uid
	e.Comm = trace.CString(h.Comm[:])
	e.Ret = h.Ret
	e.Filename = raw[execHeaderSize:fnEnd]
	e.Cwd = raw[fnEnd:cwdEnd]
	e.Args = SplitArgs(e.Args[:0], raw[cwdEnd:end])
	e.Truncated = h.Flags&argsTruncated != 0
	e.FilenameTruncated = h.Flags&filenameTruncated != 0
	e.CwdTruncated = h.Flags&cwdTruncated != 0
	return nil
}

// SplitArgs appends the arguments of a command line in /proc/PID/cmdline's
// form (each argument followed by a NUL; a truncated last one may lack it).
func SplitArgs(dst [][]byte, cmdline []byte) [][]byte {
	for len(cmdline) > 0 {
		i := bytes.IndexByte(cmdline, 0)
		if i < 0 {
			return append(dst, cmdline)
		}
		dst = append(dst, cmdline[:i:i])
		cmdline = cmdline[i+1:]
	}
	return dst
}
