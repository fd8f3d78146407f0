// Package offcputime measures where tasks spend time off CPU: at every
// sched_switch the task switched out is stamped with the time and its
// kernel and user stacks, and when it runs again the time it was away is
// added, in the kernel, to a total per thread and pair of stacks. Stacks
// are symbolized with /proc/kallsyms and the ELF symbol tables of the
// files each process maps.
package offcputime

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
	"github.com/bpfkit/bpfkit/pkg/trace"
	"github.com/bpfkit/bpfkit/pkg/trace/symbol"
)

// Tool describes offcputime to its command, to `bpfkit check` and to serve.
var Tool = tool.Descriptor{
	Name:    "offcputime",
	Kind:    tool.Sampler,
	Summary: "Summarize time off CPU by kernel and user stack",
	Spec:    loadOffcputime,
	Hooks:   loader.Options{Alternatives: [][]string{{"sched_switch_btf", "sched_switch_raw"}}},
}

// States select tasks by the state they were switched out in (enum
// offcpu_state); zero is any state.
type States uint32

const (
	Sleeping        = States(offcputimeOffcpuStateOFFCPU_INTERRUPTIBLE)   // S: interruptible sleep
	Uninterruptible = States(offcputimeOffcpuStateOFFCPU_UNINTERRUPTIBLE) // D: uninterruptible sleep (disk, some locks)
	Preempted       = States(offcputimeOffcpuStateOFFCPU_PREEMPTED)       // R: switched out while runnable
)

// ParseStates reads states as letters (S, D, R), alone or comma-separated.
func ParseStates(s string) (States, error) {
	var st States
	for _, f := range strings.Split(s, ",") {
		switch strings.ToUpper(strings.TrimSpace(f)) {
		case "S":
			st |= Sleeping
		case "D":
			st |= Uninterruptible
		case "R":
			st |= Preempted
		default:
			return 0, fmt.Errorf("state %s: use S (sleeping), D (uninterruptible) or R (preempted), e.g. --state D or --state S,D", flagval.Quote(f))
		}
	}
	return st, nil
}

// Config selects what is measured. Filters run in the kernel.
type Config struct {
	Filter     loader.TaskFilter
	States     States
	Min, Max   time.Duration // only off-CPU periods within [Min, Max]; Max 0 is none
	KernelOnly bool          // no user stacks
	UserOnly   bool          // no kernel stacks
	Debug      bool
}

// Entry is the time one thread spent off CPU blocked at one place.
type Entry struct {
	PID, TID uint32
	Comm     string
	// Kernel and User are the stacks' functions, innermost first; nil
	// when not taken (-k/-u). A lost stack (trace.StackErr says why: the
	// stack map full, the CPU's scratch busy) is KernelLost/UserLost.
	Kernel, User         []string
	KernelLost, UserLost bool
	Total                time.Duration
	Count                uint64
}

// Tracer measures from New until Close.
type Tracer struct {
	objs *loader.Objects
	maps offcputimeMaps
	cfg  Config
}

// New loads offcputime's program and attaches it to sched_switch.
func New(cfg Config) (*Tracer, error) {
	if cfg.KernelOnly && cfg.UserOnly {
		return nil, fmt.Errorf("choose at most one of kernel-only (-k) and user-only (-u) stacks")
	}
	if cfg.Max != 0 && cfg.Max < cfg.Min {
		return nil, fmt.Errorf("maximum off-CPU time %s is below the minimum %s", cfg.Max, cfg.Min)
	}
	spec, err := loadOffcputime()
	if err != nil {
		return nil, err
	}
	var knobs offcputimeVariableSpecs
	if err := spec.Assign(&knobs); err != nil {
		return nil, err
	}
	if err := errors.Join(
		knobs.StateMask.Set(uint32(cfg.States)),
		knobs.MinNs.Set(uint64(max(cfg.Min, 1))),
		knobs.MaxNs.Set(uint64(cfg.Max)),
		knobs.KernelStacks.Set(!cfg.UserOnly),
		knobs.UserStacks.Set(!cfg.KernelOnly),
		knobs.SwitchPrevState.Set(loader.SchedSwitchHasPrevState()),
	); err != nil {
		return nil, fmt.Errorf("configure offcputime: %w", err)
	}
	vars, err := cfg.Filter.Variables()
	if err != nil {
		return nil, err
	}
	objs, err := Tool.Load(spec, loader.Options{
		Variables: vars,
		RingSize:  4096, // offcputime sends no events: the smallest ring
		Debug:     cfg.Debug,
	})
	if err != nil {
		return nil, err
	}
	t := &Tracer{objs: objs, cfg: cfg}
	if err := objs.Assign(&t.maps); err != nil {
		objs.Close()
		return nil, err
	}
	return t, nil
}

// Close detaches and frees everything.
func (t *Tracer) Close() error { return t.objs.Close() }

// Health reports the off-CPU periods not recorded because the totals map
// (thread and stack pairs) was full, the runs the kernel skipped and the
// hooks this kernel lacks.
func (t *Tracer) Health() loader.Health {
	h := t.objs.Health()
	h.Full = fmt.Sprintf("off-CPU periods not recorded: the totals table (%d entries) was full", t.maps.Totals.MaxEntries())
	return h
}

// Read returns the totals since New, symbolized, the most time first. Read
// while the processes live: the user stacks of exited ones show addresses.
func (t *Tracer) Read() ([]Entry, error) {
	ksyms, err := symbol.NewKernel()
	if err != nil && !t.cfg.UserOnly {
		return nil, err
	}
	usyms := symbol.NewUser()
	stacks := t.maps.Stacks
	var (
		key offcputimeOffcpuKey
		val offcputimeOffcpuVal
		out []Entry
	)
	frame := make([]uint64, stacks.ValueSize()/8) // OFFCPU_STACK_DEPTH
	it := t.maps.Totals.Iterate()
	for it.Next(&key, &val) {
		e := Entry{PID: key.Pid, TID: key.Tid, Comm: string(trace.CString(key.Comm[:])),
			Total: time.Duration(val.Ns), Count: val.Count}
		if !t.cfg.UserOnly {
			addrs, ok := trace.StackFrames(stacks, key.Kstack, frame)
			e.KernelLost = !ok
			for _, a := range addrs {
				e.Kernel = append(e.Kernel, ksyms.Name(a))
			}
			e.Kernel = trimTracing(e.Kernel)
		}
		if !t.cfg.KernelOnly {
			addrs, ok := trace.StackFrames(stacks, key.Ustack, frame)
			// A kernel thread has no user stack: not a loss.
			e.UserLost = !ok && !errors.Is(trace.StackErr(key.Ustack), syscall.EFAULT)
			for _, a := range addrs {
				e.User = append(e.User, usyms.Name(key.Pid, a))
			}
		}
		out = append(out, e)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read off-CPU totals: %w", err)
	}
	out = merge(out)
	slices.SortFunc(out, func(a, b Entry) int {
		if c := cmp.Compare(b.Total, a.Total); c != 0 {
			return c
		}
		return cmp.Compare(a.TID, b.TID)
	})
	return out, nil
}

// merge adds up the entries of a thread whose stacks read the same once
// symbolized (different return addresses in the same functions).
func merge(entries []Entry) []Entry {
	seen := map[string]int{}
	var out []Entry
	for _, e := range entries {
		k := fmt.Sprint(e.PID, e.TID, e.Comm, e.KernelLost, e.UserLost, e.Kernel, "|", e.User)
		if i, ok := seen[k]; ok {
			out[i].Total += e.Total
			out[i].Count += e.Count
			continue
		}
		seen[k] = len(out)
		out = append(out, e)
	}
	return out
}

// trimTracing drops the innermost frames that are the tracing machinery
// (this program, bpf_trace_run, the tracepoint's iterator), so stacks
// start at the scheduler like bcc's.
func trimTracing(frames []string) []string {
	for len(frames) > 1 {
		f := frames[0]
		if !strings.HasPrefix(f, "bpf_prog_") && !strings.HasPrefix(f, "bpf_trace_run") &&
			!strings.HasPrefix(f, "__bpf_trace_") && !strings.HasPrefix(f, "__traceiter_") {
			break
		}
		frames = frames[1:]
	}
	return frames
}

// AppendText appends an entry the way bcc's offcputime prints it: kernel
// frames, "--", user frames, then "-  comm (pid)" and the total in µs.
func AppendText(b []byte, e *Entry, kernel, user bool) []byte {
	if kernel {
		if e.KernelLost {
			b = append(b, "    [Missed Kernel Stack]\n"...)
		}
		for _, f := range e.Kernel {
			b = append(append(append(b, "    "...), f...), '\n')
		}
	}
	if user {
		if kernel && len(e.Kernel) > 0 && len(e.User) > 0 {
			b = append(b, "    --\n"...)
		}
		if e.UserLost {
			b = append(b, "    [Missed User Stack]\n"...)
		}
		for _, f := range e.User {
			b = append(append(append(b, "    "...), f...), '\n')
		}
	}
	b = fmt.Appendf(b, "    %-16s %s (%d)\n", "-", e.Comm, e.TID)
	return append(strconv.AppendInt(append(b, "        "...), e.Total.Microseconds(), 10), "\n\n"...)
}

// AppendFolded appends an entry as one line of the folded format flame
// graph tools read: comm;user frames;-;kernel frames (outermost first)
// and the total in µs.
func AppendFolded(b []byte, e *Entry, kernel, user bool) []byte {
	b = append(b, foldName(e.Comm)...)
	if user {
		if e.UserLost {
			b = append(b, ";[Missed User Stack]"...)
		}
		for i := len(e.User) - 1; i >= 0; i-- {
			b = append(append(b, ';'), foldName(e.User[i])...)
		}
	}
	if kernel {
		if user && len(e.User) > 0 && len(e.Kernel) > 0 {
			b = append(b, ";-"...)
		}
		if e.KernelLost {
			b = append(b, ";[Missed Kernel Stack]"...)
		}
		for i := len(e.Kernel) - 1; i >= 0; i-- {
			b = append(append(b, ';'), foldName(e.Kernel[i])...)
		}
	}
	b = append(b, ' ')
	return append(strconv.AppendInt(b, e.Total.Microseconds(), 10), '\n')
}

// foldName keeps a frame from breaking the folded format, which splits
// frames at ';' and the count at the last space.
func foldName(s string) string { return folder.Replace(s) }

var folder = strings.NewReplacer(";", ":", " ", "_", "\n", "_")
