package execsnoop

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// ExitConfig selects which exits are traced. Every filter runs in the kernel.
type ExitConfig struct {
	Filter     loader.TaskFilter // the exiting task: its pid, uid, name, cgroup
	PPID       uint32            // only children of this process
	FailedOnly bool              // only non-zero exit statuses and deaths by signal
	Threads    bool              // every thread's exit, not only each process's last
	ArgsLimit  int               // bytes of argv remembered per exec; 0 for DefaultArgsLimit
	RingSize   int               // bytes; 0 for DefaultRingSize
	Debug      bool              // full verifier log on rejection
}

// ExitEvent is one exit. Comm and Args point into buffers that are reused:
// they are valid only until the emit callback returns.
type ExitEvent struct {
	Time     time.Time
	PID      uint32 // process (thread group) id
	TID      uint32 // the thread that exited; for a process, its last thread
	PPID     uint32
	Comm     []byte
	ExitCode int            // the status passed to exit(2); 0 when killed
	Signal   syscall.Signal // the signal that killed it, 0 if none
	Core     bool           // a core was dumped
	Age      time.Duration  // since the task (for a process, its first thread) started
	// Args is the command line, when the process exec'd while the tracer
	// ran; nil otherwise.
	Args          [][]byte
	ArgsTruncated bool
}

// Failed reports whether the exit is an error: a non-zero status or a signal.
func (e *ExitEvent) Failed() bool { return e.ExitCode != 0 || e.Signal != 0 }

// Bounds on the command lines kept for processes still running: beyond
// them, exits come without args.
const (
	maxRemembered      = 1 << 16
	maxRememberedBytes = 32 << 20
)

type cmdline struct {
	raw       []byte
	truncated bool
}

// ExitTracer is attached from NewExit until Close.
type ExitTracer struct {
	objs  *loader.Objects
	clock trace.Clock
	ev    ExitEvent
	exec  Event
	args  [][]byte
	// cmdlines holds the argv of processes seen exec'ing, until they exit.
	cmdlines map[uint32]*cmdline
	bytes    int // held in cmdlines
	free     []*cmdline
}

// NewExit loads exitsnoop's programs with cfg and attaches them.
func NewExit(cfg ExitConfig) (*ExitTracer, error) {
	vars, err := cfg.Filter.Variables()
	if err != nil {
		return nil, err
	}
	knobs := func(k *execsnoopVariableSpecs) error {
		return errors.Join(k.OnlyFailedExits.Set(cfg.FailedOnly), k.AllThreads.Set(cfg.Threads), k.FilterPpid.Set(cfg.PPID))
	}
	objs, err := load(exitPrograms, vars, knobs, cfg.ArgsLimit, cfg.RingSize, cfg.Debug)
	if err != nil {
		return nil, err
	}
	return &ExitTracer{objs: objs, clock: trace.NewClock(), cmdlines: map[uint32]*cmdline{}}, nil
}

// Dropped lists the hooks this kernel lacks.
func (t *ExitTracer) Dropped() map[string]error { return t.objs.Dropped }

// Run streams exits to emit until ctx ends (then drains what is queued) or
// emit returns an error (loader.ErrStop ends it without one).
func (t *ExitTracer) Run(ctx context.Context, opts loader.StreamOptions, emit func(*ExitEvent) error) (loader.Stats, error) {
	if opts.FlushEvery == 0 {
		opts.FlushEvery = FlushEvery
	}
	return t.objs.Stream(ctx, opts, func(raw []byte) error {
		if len(raw) == 0 {
			return nil
		}
		switch raw[0] {
		case recordExec:
			return t.remember(raw)
		case recordExit:
			done, err := t.decodeExit(raw)
			if err != nil {
				return err
			}
			err = emit(&t.ev)
			if done {
				t.forget(t.ev.PID)
			}
			return err
		}
		return nil
	})
}

// Close detaches and frees everything.
func (t *ExitTracer) Close() error { return t.objs.Close() }

// Health reports what the tracer lost (see Tracer.Health).
func (t *ExitTracer) Health() loader.Health { return t.objs.Health() }

// remember keeps the command line of an exec until its process exits.
func (t *ExitTracer) remember(raw []byte) error {
	if err := decodeExec(&t.exec, raw, t.clock); err != nil {
		return err
	}
	c := t.cmdlines[t.exec.PID]
	if c == nil {
		if len(t.cmdlines) >= maxRemembered || t.bytes >= maxRememberedBytes {
			return nil
		}
		if n := len(t.free); n > 0 {
			c, t.free = t.free[n-1], t.free[:n-1]
		} else {
			c = &cmdline{}
		}
		t.cmdlines[t.exec.PID] = c
	}
	t.bytes -= len(c.raw)
	c.raw = c.raw[:0]
	for _, a := range t.exec.Args {
		c.raw = append(append(c.raw, a...), 0)
	}
	if t.exec.Truncated && len(c.raw) > 0 {
		c.raw = c.raw[:len(c.raw)-1]
	}
	c.truncated = t.exec.Truncated
	t.bytes += len(c.raw)
	return nil
}

func (t *ExitTracer) forget(pid uint32) {
	if c, ok := t.cmdlines[pid]; ok {
		delete(t.cmdlines, pid)
		t.bytes -= len(c.raw)
		if cap(c.raw) <= DefaultArgsLimit {
			c.raw = c.raw[:0] // counted out of t.bytes: remember must not count it out again
			t.free = append(t.free, c)
		}
	}
}

// decodeExit fills t.ev from an exit record; done says the process is gone.
func (t *ExitTracer) decodeExit(raw []byte) (done bool, err error) {
	if len(raw) < exitHeaderSize {
		return false, fmt.Errorf("short exit record: %d bytes", len(raw))
	}
	h := (*execsnoopExitEvent)(unsafe.Pointer(&raw[0]))
	e := &t.ev
	e.Time = t.clock.Time(h.BootNs)
	e.PID, e.TID, e.PPID = h.Pid, h.Tid, h.Ppid
	e.Comm = trace.CString(h.Comm[:])
	e.ExitCode, e.Signal, e.Core = DecodeStatus(h.Code)
	e.Age = time.Duration(h.AgeNs)
	e.Args, e.ArgsTruncated = nil, false
	if c := t.cmdlines[h.Pid]; c != nil {
		t.args = SplitArgs(t.args[:0], c.raw)
		e.Args, e.ArgsTruncated = t.args, c.truncated
	}
	return h.GroupDead != 0, nil
}

// DecodeStatus splits a kernel exit code (task->exit_code, the wait(2)
// status) into exit status, signal and core-dumped.
func DecodeStatus(code uint32) (exitCode int, sig syscall.Signal, core bool) {
	ws := syscall.WaitStatus(code)
	if ws.Signaled() {
		return 0, ws.Signal(), ws.CoreDump()
	}
	return int(code>>8) & 0xff, 0, false
}
