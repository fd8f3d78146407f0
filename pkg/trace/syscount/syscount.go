// Package syscount counts syscalls in the kernel: calls, errors and time,
// per syscall and optionally per process, named from the running kernel.
package syscount

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// Tool describes syscount to its command, to `bpfkit check` and to serve.
var Tool = tool.Descriptor{
	Name:    "syscount",
	Kind:    tool.Sampler,
	Summary: "Count syscalls per syscall (or process): calls, errors and time, named from this kernel",
	Spec:    loadSyscount,
	Hooks:   loader.Options{},
}

// DefaultMapSize is how many (process, syscall) pairs are counted unless
// Config.MapSize says otherwise; MaxMapSize is the most it may say.
const (
	DefaultMapSize = 10240
	MaxMapSize     = 1 << 20
)

// Config chooses what syscount counts.
type Config struct {
	Filter     loader.TaskFilter // the calling task
	PerProcess bool              // a row per process and syscall
	Latency    bool              // time spent in the calls (only calls whose entry was seen)
	FailedOnly bool              // only calls that failed
	Errno      syscall.Errno     // only calls that failed with this; 0: any
	MapSize    int               // (process, syscall) pairs; 0 for DefaultMapSize
	Debug      bool              // full verifier log on rejection
}

// Row is one syscall's (or one process's syscall's) counts.
type Row struct {
	PID     uint32 // with Config.PerProcess
	Comm    string // with Config.PerProcess
	Nr      uint32
	Name    string // the kernel's name ("openat"), or "syscall_N"
	Count   uint64
	Errors  uint64
	TotalNS uint64 // with Config.Latency
}

// Tracer counts from New until Close.
type Tracer struct {
	named *Named
	// maps.Counts per process and syscall (Config.PerProcess), maps.Totals
	// per syscall and CPU (otherwise).
	maps       syscountMaps
	perProcess bool
	prev       map[syscountSyscountKey]syscountSyscountVal
}

// New loads syscount's programs and attaches them.
func New(cfg Config) (*Tracer, error) {
	spec, err := Tool.Spec()
	if err != nil {
		return nil, err
	}
	vars, err := cfg.Filter.Variables()
	if err != nil {
		return nil, err
	}
	var (
		knobs syscountVariableSpecs
		maps  syscountMapSpecs
	)
	if err := errors.Join(spec.Assign(&knobs), spec.Assign(&maps)); err != nil {
		return nil, err
	}
	if err := errors.Join(
		knobs.PerProcess.Set(cfg.PerProcess),
		knobs.Latency.Set(cfg.Latency),
		knobs.FailedOnly.Set(cfg.FailedOnly),
		knobs.FilterErrno.Set(int32(cfg.Errno)),
	); err != nil {
		return nil, fmt.Errorf("configure syscount: %w", err)
	}
	size := cfg.MapSize
	if size == 0 {
		size = DefaultMapSize
	}
	if size < 1 || size > MaxMapSize {
		return nil, fmt.Errorf("map size %d: give a number of entries from 1 to %d", size, MaxMapSize)
	}
	maps.Counts.MaxEntries = uint32(size)
	if !cfg.Latency {
		// Attached, it would cost every call the trace event's record
		// and a run that returns at once (as libbpf-tools leaves it out).
		delete(spec.Programs, syscountProgSysEnter)
		maps.Start.MaxEntries = 1 // sys_exit's dead branch names it
	}
	// No events, aggregates only: the ring buffer gets the smallest size.
	named, err := LoadNamed(spec, loader.Options{Variables: vars, RingSize: os.Getpagesize(), Debug: cfg.Debug})
	if err != nil {
		return nil, err
	}
	t := &Tracer{named: named, perProcess: cfg.PerProcess, prev: map[syscountSyscountKey]syscountSyscountVal{}}
	if err := named.Assign(&t.maps); err != nil {
		named.Close()
		return nil, err
	}
	return t, nil
}

// Close detaches and frees everything.
func (t *Tracer) Close() error { return t.named.Close() }

// Dropped lists the hooks this kernel lacks.
func (t *Tracer) Dropped() map[string]error { return t.named.Dropped }

// Name returns the kernel's name of syscall nr (Named.Name).
func (t *Tracer) Name(nr uint32) string { return t.named.Name(nr) }

// TableError is why names are learnt by namers, not read from the kernel's
// table (Named.TableError); nil when they were read.
func (t *Tracer) TableError() error { return t.named.TableError() }

// Namer returns the program that names syscall name and whether it is
// still attached (Named.Namer).
func (t *Tracer) Namer(name string) (*ebpf.Program, bool) { return t.named.Namer(name) }

// Health reports the calls not counted because the table was full, the
// runs the kernel skipped and the hooks this kernel lacks.
func (t *Tracer) Health() loader.Health {
	h := t.named.Health()
	h.Full = fmt.Sprintf("calls not counted: the table (%d entries) is full (raise --map-size)", t.maps.Counts.MaxEntries())
	return h
}

// Delta returns what was counted since the previous call (or New), most
// calls first, and forgets processes that have exited.
func (t *Tracer) Delta() ([]Row, error) {
	now, err := t.read()
	if err != nil {
		return nil, fmt.Errorf("read syscall counts: %w", err)
	}
	var rows []Row
	for k, v := range now {
		p := t.prev[k]
		if v.Count > p.Count {
			rows = append(rows, Row{
				PID: k.Pid, Comm: string(trace.CString(v.Comm[:])), Nr: k.Nr, Name: t.Name(k.Nr),
				Count: v.Count - p.Count, Errors: v.Errors - p.Errors, TotalNS: v.TotalNs - p.TotalNs,
			})
		}
		if k.Pid != 0 && !alive(k.Pid) {
			if err := t.maps.Counts.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return nil, fmt.Errorf("forget process %d: %w", k.Pid, err)
			}
			delete(now, k)
		}
	}
	t.prev = now
	slices.SortFunc(rows, func(a, b Row) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.PID, b.PID), cmp.Compare(a.Nr, b.Nr))
	})
	return rows, nil
}

// read returns the counts so far: per process from the counts map, or per
// syscall summed over the CPUs from the totals array (under pid 0).
func (t *Tracer) read() (map[syscountSyscountKey]syscountSyscountVal, error) {
	now := map[syscountSyscountKey]syscountSyscountVal{}
	if t.perProcess {
		err := loader.ReadAll(t.maps.Counts, func(k *syscountSyscountKey, v *syscountSyscountVal) { now[*k] = *v })
		return now, err
	}
	var (
		nr     uint32
		perCPU []syscountSyscountTotal
	)
	it := t.maps.Totals.Iterate()
	for it.Next(&nr, &perCPU) {
		var v syscountSyscountVal
		for _, c := range perCPU {
			v.Count += c.Count
			v.Errors += c.Errors
			v.TotalNs += c.TotalNs
		}
		if v.Count > 0 {
			now[syscountSyscountKey{Nr: nr}] = v
		}
	}
	return now, it.Err()
}

func alive(pid uint32) bool {
	_, err := os.Stat("/proc/" + strconv.FormatUint(uint64(pid), 10))
	return err == nil
}

// ParseErrno reads an errno by name (ENOENT) or number (2).
func ParseErrno(s string) (syscall.Errno, error) {
	if n, err := strconv.ParseUint(s, 10, 16); err == nil && n > 0 && n < 4096 {
		return syscall.Errno(n), nil
	}
	for e := syscall.Errno(1); s != "" && e < 4096; e++ {
		if unix.ErrnoName(e) == strings.ToUpper(s) {
			return e, nil
		}
	}
	return 0, fmt.Errorf("errno %s: give a name such as ENOENT or a number from 1 to 4095", flagval.Quote(s))
}

// Time is the time spent in the row's calls.
func (r *Row) Time() time.Duration { return time.Duration(r.TotalNS) }
