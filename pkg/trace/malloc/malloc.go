// Package malloc counts the calls a process makes to its memory allocator
// — glibc, jemalloc, tcmalloc, mimalloc, one brought in by LD_PRELOAD or
// one linked into the executable — by uprobes on the allocator's own
// entry points: calls and bytes per function, a log2 histogram of sizes,
// the blocks not freed yet and the bytes per user stack, all kept in the
// kernel and filtered there to the traced processes.
package malloc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
	"github.com/bpfkit/bpfkit/pkg/trace"
	"github.com/bpfkit/bpfkit/pkg/trace/symbol"
)

// Tool describes malloc to its command, to `bpfkit check` and to serve.
var Tool = tool.Descriptor{
	Name:    "malloc",
	Kind:    tool.Sampler,
	Summary: "Count a process's allocator calls and bytes per function (glibc, jemalloc, tcmalloc, ...)",
	Spec:    loadMalloc,
	Hooks:   loader.Options{Alternatives: [][]string{{"sched_process_fork_btf", "sched_process_fork_raw"}}},
}

// DefaultMaxBlocks is how many blocks --outstanding tracks at most.
const DefaultMaxBlocks = 1 << 18

// Config selects what is measured.
type Config struct {
	Follow      bool // trace the children the process forks (-f)
	Sizes       bool // log2 histogram of the sizes asked for
	Outstanding bool // blocks not freed yet, with their stacks
	Stacks      bool // bytes per user stack
	MaxBlocks   int  // blocks tracked by Outstanding; 0: DefaultMaxBlocks
	PerCgroup   bool // serve: bytes per cgroup and allocator (CgroupBytes)
	Debug       bool
	// Exec, with Follow, is told of every traced process that execs: the
	// allocator its new program uses (probed now if it was not), or why
	// it could not be found or probed. It runs on the tracer's goroutine.
	Exec func(pid int, alloc *Allocator, err error)
}

// Row is one function's calls and bytes.
type Row struct {
	Function  string
	Allocator string
	Calls     uint64
	Bytes     uint64
}

// Tracer counts from New until Close.
type Tracer struct {
	objs  *loader.Objects
	maps  mallocMaps
	cfg   Config
	alloc *Allocator
	usyms *symbol.User

	mu       sync.Mutex // links and probed: the exec follower adds to them
	links    []link.Link
	probed   map[probeKey]bool // allocator files with probes, and for which process
	others   []*Allocator      // probed after an exec (-f)
	names    []string          // PerCgroup: the allocators' names, by traced's value - 1
	pids     []uint32
	stopExec context.CancelFunc // the exec follower (-f)
	execDone chan struct{}
}

// probeKey names a file by device and inode (the same library reached by
// two paths is probed once) and the process its probes are for (0: all).
type probeKey struct {
	dev, ino uint64
	pid      int
}

// New loads malloc's programs and attaches them to alloc's functions for
// process pid (and its future children with Follow).
func New(alloc *Allocator, pid int, cfg Config) (_ *Tracer, err error) {
	if cfg.MaxBlocks == 0 {
		cfg.MaxBlocks = DefaultMaxBlocks
	}
	spec, err := loadMalloc()
	if err != nil {
		return nil, err
	}
	stacks := cfg.Stacks || cfg.Outstanding
	// Return probes: on every allocating function to learn the address
	// (--outstanding) or take the whole stack (--stacks). Counting only,
	// on all but malloc, the hottest: they mark the thread as inside the
	// API until they return, so that the calls they make to another of
	// its functions are not counted twice (glibc's reallocarray calls
	// realloc, tcmalloc's posix_memalign and valloc call memalign).
	// Programs for alloc's functions, or for every function when other
	// allocators may come (-f's execs, serve's Add).
	var retMask uint32
	keep := map[string]bool{}
	fns := make([]mallocMallocFn, 0, len(api))
	for _, f := range alloc.Funcs {
		fns = append(fns, f.fn)
	}
	if cfg.Follow || cfg.PerCgroup {
		fns = fns[:0]
		for _, a := range api {
			fns = append(fns, a.fn)
		}
	}
	for _, fn := range fns {
		enter, ret := programs(fn)
		keep[enter] = true
		if ret != "" && (stacks || fn != mallocMallocFnMALLOC_FN_MALLOC) {
			keep[ret] = true
			retMask |= 1 << fn
		}
	}
	for name, p := range spec.Programs {
		if p.Type == ebpf.Kprobe && !keep[name] {
			delete(spec.Programs, name)
		}
	}
	if !cfg.Follow {
		delete(spec.Programs, mallocProgExecDone)
	}
	var specs struct {
		mallocMapSpecs
		mallocVariableSpecs
	}
	if err := spec.Assign(&specs); err != nil {
		return nil, err
	}
	if !cfg.PerCgroup {
		specs.CgroupBytes.MaxEntries = 1
	}
	if !stacks {
		specs.Allocs.MaxEntries = 1
		specs.Stacks.MaxEntries = 1
		specs.StackBytes.MaxEntries = 1
	} else {
		specs.Allocs.MaxEntries = uint32(cfg.MaxBlocks)
	}
	if err := errors.Join(
		specs.Follow.Set(cfg.Follow),
		specs.SizesOn.Set(cfg.Sizes),
		specs.OutstandingOn.Set(cfg.Outstanding),
		specs.StacksOn.Set(stacks),
		specs.RetMask.Set(retMask),
		specs.PerCgroup.Set(cfg.PerCgroup),
	); err != nil {
		return nil, fmt.Errorf("configure malloc: %w", err)
	}
	objs, err := Tool.Load(spec, loader.Options{
		RingSize: 4096, // only -f's execs, each read at once: the smallest ring
		Debug:    cfg.Debug,
	})
	if err != nil {
		return nil, err
	}
	t := &Tracer{objs: objs, cfg: cfg, alloc: alloc, usyms: symbol.NewUser(), probed: map[probeKey]bool{}, names: []string{alloc.Name}}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	if err := objs.Assign(&t.maps); err != nil {
		return nil, err
	}
	if err := t.Trace(pid); err != nil {
		return nil, err
	}
	// Without -f only the process's own memory gets breakpoints (the
	// perf event's pid): others' calls do not even trap.
	probePID := pid
	if cfg.Follow {
		probePID = 0
	}
	if err := t.probe(alloc, probePID); err != nil {
		return nil, err
	}
	if cfg.Follow {
		ctx, cancel := context.WithCancel(context.Background())
		t.stopExec, t.execDone = cancel, make(chan struct{})
		go func() {
			defer close(t.execDone)
			t.objs.Stream(ctx, loader.StreamOptions{}, func(raw []byte) error {
				if len(raw) >= int(unsafe.Sizeof(mallocMallocExec{})) {
					t.followExec(int((*mallocMallocExec)(unsafe.Pointer(&raw[0])).Pid))
				}
				return nil
			})
		}()
	}
	return t, nil
}

// probe attaches the programs to alloc's functions, for process pid (0:
// every process), unless that file has them already.
func (t *Tracer) probe(alloc *Allocator, pid int) error {
	var st unix.Stat_t
	if err := unix.Stat(alloc.open, &st); err != nil {
		return fmt.Errorf("open %s: %w", alloc.Path, err)
	}
	id := probeKey{st.Dev, st.Ino, pid}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.probed[id] {
		return nil
	}
	ex, err := link.OpenExecutable(alloc.open)
	if err != nil {
		return fmt.Errorf("open %s: %w", alloc.Path, err)
	}
	opts := &link.UprobeOptions{PID: pid}
	for _, f := range alloc.Funcs {
		enter, ret := programs(f.fn)
		opts.Address = f.Offset
		l, err := ex.Uprobe(f.Name, t.objs.Collection.Programs[enter], opts)
		if err != nil {
			return loader.Explain(fmt.Sprintf("attach a uprobe to %s in %s", f.Name, alloc.Path), loader.PerfEventError(err), t.cfg.Debug)
		}
		t.links = append(t.links, l)
		if p := t.objs.Collection.Programs[ret]; p != nil {
			l, err := ex.Uretprobe(f.Name, p, opts)
			if err != nil {
				return loader.Explain(fmt.Sprintf("attach a uretprobe to %s in %s", f.Name, alloc.Path), loader.PerfEventError(err), t.cfg.Debug)
			}
			t.links = append(t.links, l)
		}
	}
	if len(t.probed) > 0 && !slices.ContainsFunc(t.others, func(a *Allocator) bool { return a.open == alloc.open }) && alloc.open != t.alloc.open {
		t.others = append(t.others, alloc)
	}
	t.probed[id] = true
	return nil
}

// followExec probes the allocator of process pid, a traced process that
// has just exec'd and that the kernel side stopped before its new
// program's first instruction, then continues it. Its counts add to the
// rows of the same functions.
func (t *Tracer) followExec(pid int) {
	defer unix.Kill(pid, unix.SIGCONT)
	alloc, err := FindExec(pid)
	if err == nil {
		err = t.probe(alloc, 0)
	}
	if err != nil {
		alloc = nil
	}
	if t.cfg.Exec != nil {
		t.cfg.Exec(pid, alloc, err)
	}
}

// Trace adds a process to the traced ones.
func (t *Tracer) Trace(pid int) error { return t.trace(pid, 1) }

func (t *Tracer) trace(pid int, allocator uint8) error {
	if err := t.maps.Traced.Put(uint32(pid), allocator); err != nil {
		return fmt.Errorf("trace process %d: %w", pid, err)
	}
	t.pids = append(t.pids, uint32(pid))
	return nil
}

// Add traces process pid too, served by alloc, with probes on alloc for
// that process alone (serve's --malloc-pids).
func (t *Tracer) Add(pid int, alloc *Allocator) error {
	i := slices.Index(t.names, alloc.Name)
	if i < 0 {
		if len(t.names) == 255 {
			return fmt.Errorf("process %d: more than 255 allocators", pid)
		}
		t.names = append(t.names, alloc.Name)
		i = len(t.names) - 1
	}
	if err := t.trace(pid, uint8(i+1)); err != nil {
		return err
	}
	return t.probe(alloc, pid)
}

// CgroupBytes calls fn with the bytes asked for per cgroup (v2 id) and
// allocator name, since New (PerCgroup).
func (t *Tracer) CgroupBytes(fn func(cgroup uint64, allocator string, bytes uint64)) error {
	return loader.ReadAll(t.maps.CgroupBytes, func(k *mallocMallocCgroupKey, n *uint64) {
		if k.Allocator >= 1 && int(k.Allocator) <= len(t.names) {
			fn(k.Cgroup, t.names[k.Allocator-1], *n)
		}
	})
}

// Close detaches and frees everything.
func (t *Tracer) Close() error {
	if t.stopExec != nil {
		// No process is traced any more, so none is stopped at its exec
		// from now on; one whose exec's program had already looked it up
		// (a few microseconds) is in the ring before the end of the
		// grace, and the reader continues it as it drains the ring.
		var pid uint32
		traced := t.maps.Traced
		for traced.NextKey(nil, &pid) == nil {
			traced.Delete(pid)
		}
		time.Sleep(20 * time.Millisecond)
		t.stopExec()
		<-t.execDone
		t.stopExec = nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	t.links = nil
	return errors.Join(append(errs, t.objs.Close())...)
}

// Health reports losses (full maps) and missing hooks.
func (t *Tracer) Health() loader.Health {
	h := t.objs.Health()
	h.Full = "blocks, stacks or followed processes not recorded: a table was full (raise --max-blocks for blocks)"
	return h
}

// Allocator is the allocator traced.
func (t *Tracer) Allocator() *Allocator { return t.alloc }

// Remember reads the traced processes' mappings and symbol tables now, so
// that their stacks still resolve after they exit.
func (t *Tracer) Remember() {
	for _, pid := range t.pids {
		t.usyms.Remember(pid)
	}
}

// Rows returns the calls and bytes of every function traced, in the
// order of the API (malloc, calloc, realloc, ...), named as the traced
// process's allocator names them. The calls of a followed program (-f)
// that uses another allocator add to the same functions' rows; a function
// only that one has comes after them.
func (t *Tracer) Rows() ([]Row, error) {
	var per []mallocMallocCount
	funcs := slices.Clone(t.alloc.Funcs)
	t.mu.Lock()
	for _, a := range t.others {
		for _, f := range a.Funcs {
			covered := slices.ContainsFunc(funcs, func(g Func) bool {
				return slices.ContainsFunc(strings.Split(f.Name, "/"), func(n string) bool { return slices.Contains(strings.Split(g.Name, "/"), n) })
			})
			if !covered {
				funcs = append(funcs, f)
			}
		}
	}
	t.mu.Unlock()
	rows := make([]Row, 0, len(funcs))
	for _, f := range funcs {
		r := Row{Function: f.Name, Allocator: t.alloc.Name}
		// A row of aliases ("aligned_alloc/memalign") also counts the
		// names another allocator has apart.
		for _, name := range strings.Split(f.Name, "/") {
			fn := api[slices.IndexFunc(api, func(a apiFunc) bool { return a.name == name })].fn
			if err := t.maps.Counts.Lookup(uint32(fn), &per); err != nil {
				return nil, fmt.Errorf("read the counts: %w", err)
			}
			for _, c := range per {
				r.Calls += c.Calls
				r.Bytes += c.Bytes
			}
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// Sizes returns the log2 histogram of the sizes asked for, in buckets as
// output.AppendLog2Hist prints them: 0 holds sizes 0 and 1, bucket k sizes
// from 2^k to 2^(k+1)-1.
func (t *Tracer) Sizes() ([]uint64, error) {
	out := make([]uint64, 64)
	var per []uint64
	for slot := range uint32(65) { // 0: size 0; k: [2^(k-1), 2^k)
		if err := t.maps.Sizes.Lookup(slot, &per); err != nil {
			return nil, fmt.Errorf("read the sizes: %w", err)
		}
		for _, n := range per {
			out[max(int(slot)-1, 0)] += n
		}
	}
	return out, nil
}

// Stack is the bytes allocated (or, for Outstanding, not freed) from one
// user stack.
type Stack struct {
	Frames []string // innermost first; nil if the stack was not taken
	Calls  uint64   // calls, or blocks
	Bytes  uint64
}

// Stacks returns the bytes allocated per user stack, the most first.
func (t *Tracer) Stacks() ([]Stack, error) {
	var (
		id  uint64
		val mallocMallocStack
		out []Stack
	)
	it := t.maps.StackBytes.Iterate()
	for it.Next(&id, &val) {
		out = append(out, Stack{Frames: t.frames(id), Calls: val.Calls, Bytes: val.Bytes})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read the stacks: %w", err)
	}
	return mergeStacks(out), nil
}

// Outstanding returns the blocks allocated and not freed, at least
// olderThan old, per stack, the most bytes first, and their totals.
func (t *Tracer) Outstanding(olderThan time.Duration) ([]Stack, Stack, error) {
	var (
		addr  uint64
		a     mallocMallocAlloc
		ts    unix.Timespec
		total Stack
	)
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return nil, total, err
	}
	now := uint64(ts.Nano())
	by := map[uint64]*Stack{}
	it := t.maps.Allocs.Iterate()
	for it.Next(&addr, &a) {
		if olderThan > 0 && now-a.Ts < uint64(olderThan) {
			continue
		}
		s := by[a.Stack]
		if s == nil {
			s = &Stack{}
			by[a.Stack] = s
		}
		s.Calls++
		s.Bytes += a.Size
		total.Calls++
		total.Bytes += a.Size
	}
	if err := it.Err(); err != nil {
		return nil, total, fmt.Errorf("read the outstanding blocks: %w", err)
	}
	var out []Stack
	for id, s := range by {
		s.Frames = t.frames(id)
		out = append(out, *s)
	}
	return mergeStacks(out), total, nil
}

// frames symbolizes a user stack of the traced process (key: stack.h's).
func (t *Tracer) frames(key uint64) []string {
	buf := make([]uint64, t.maps.Stacks.ValueSize()/8) // MALLOC_STACK_DEPTH
	addrs, ok := trace.StackFrames(t.maps.Stacks, key, buf)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, t.usyms.Name(t.pids[0], a))
	}
	return out
}

// mergeStacks adds up stacks that read the same once symbolized, and
// sorts them by bytes, the most first.
func mergeStacks(in []Stack) []Stack {
	seen := map[string]int{}
	var out []Stack
	for _, s := range in {
		k := strings.Join(s.Frames, ";")
		if i, ok := seen[k]; ok {
			out[i].Calls += s.Calls
			out[i].Bytes += s.Bytes
			continue
		}
		seen[k] = len(out)
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Stack) int {
		if c := cmp.Compare(b.Bytes, a.Bytes); c != 0 {
			return c
		}
		return cmp.Compare(strings.Join(a.Frames, ";"), strings.Join(b.Frames, ";"))
	})
	return out
}

// Start starts cmd held at its exec (ptrace stops it there: none of the
// program has run), and returns a function that releases it. Call both
// from one goroutine; the OS thread stays locked until release.
func Start(cmd *exec.Cmd) (release func() error, err error) {
	runtime.LockOSThread()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Ptrace = true
	if err := cmd.Start(); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(cmd.Process.Pid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || !ws.Stopped() {
			runtime.UnlockOSThread()
			cmd.Process.Kill()
			return nil, fmt.Errorf("start %s: it did not stop at its exec (%v)", cmd.Path, err)
		}
		break
	}
	return func() error {
		defer runtime.UnlockOSThread()
		if err := unix.PtraceDetach(cmd.Process.Pid); err != nil {
			cmd.Process.Kill()
			return fmt.Errorf("release %s: %w", cmd.Path, err)
		}
		return nil
	}, nil
}

// WaitExit returns when process pid has exited or done is closed.
func WaitExit(pid int, done <-chan struct{}) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("watch process %d: %w", pid, err)
	}
	defer unix.Close(fd)
	for {
		select {
		case <-done:
			return nil
		default:
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 200)
		if err != nil && err != unix.EINTR {
			return fmt.Errorf("watch process %d: %w", pid, err)
		}
		if n > 0 {
			return nil
		}
	}
}

// Serve describes malloc in `bpfkit serve`: the bytes the processes of
// --malloc-pids ask their allocators for, per cgroup and allocator
// (New with PerCgroup, then Add for each process).
var Serve = tool.Descriptor{
	Name:    "malloc",
	Kind:    tool.Sampler,
	Summary: "bytes the processes of --malloc-pids ask their allocators for, per cgroup and allocator",
	Spec:    loadMalloc,
	Hooks:   Tool.Hooks,
	Metrics: []string{"bpfkit_malloc_bytes_total"},
}
