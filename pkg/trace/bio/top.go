package bio

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// Row is one process (or kernel thread) on one device over an interval.
type Row struct {
	Time       time.Time
	PID        uint32 // 0 for a kernel thread
	Comm       string
	Disk       string
	Cgroup     uint64
	Reads      uint64 // requests without data to write (the kernel's rq_data_dir)
	Writes     uint64
	ReadBytes  uint64
	WriteBytes uint64
	Latency    time.Duration // sum over the requests
}

// Avg is the mean latency of the row's requests.
func (r *Row) Avg() time.Duration {
	if n := r.Reads + r.Writes; n > 0 {
		return r.Latency / time.Duration(n)
	}
	return 0
}

// Top counts requests per process and device (biotop).
type Top struct {
	*tracer
	prev map[bioBioTopKey]bioBioTopVal
}

// NewTop loads and attaches biotop's programs.
func NewTop(cfg Config) (*Top, error) {
	t, err := newTracer(cfg, modeTop, 4096)
	if err != nil {
		return nil, err
	}
	return &Top{tracer: t, prev: map[bioBioTopKey]bioBioTopVal{}}, nil
}

// Delta returns what each process and device did since the previous call
// (or since the start), in no particular order (see SortRows). The
// kernel's counters only grow, so nothing is lost between calls.
func (t *Top) Delta() ([]Row, error) {
	now := time.Now()
	var out []Row
	next := make(map[bioBioTopKey]bioBioTopVal, len(t.prev))
	err := loader.ReadAll(t.maps.Top, func(k *bioBioTopKey, v *bioBioTopVal) {
		next[*k] = *v
		p := t.prev[*k]
		r := Row{
			Time: now, PID: k.Pid, Comm: string(trace.CString(k.Comm[:])), Disk: t.disks.Name(k.Dev), Cgroup: k.Cgroup,
			Reads: v.Reads - p.Reads, Writes: v.Writes - p.Writes,
			ReadBytes: v.ReadBytes - p.ReadBytes, WriteBytes: v.WriteBytes - p.WriteBytes,
			Latency: time.Duration(v.Ns - p.Ns),
		}
		if r.Reads+r.Writes > 0 {
			out = append(out, r)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read biotop counters: %w", err)
	}
	t.prev = next
	return out, nil
}

// SortKey orders rows, largest first.
type SortKey int

const (
	ByAll    SortKey = iota // read + write bytes, then requests
	ByIO                    // requests
	ByReads                 // read requests
	ByWrites                // write requests
	ByRBytes                // bytes read
	ByWBytes                // bytes written
	ByAvg                   // mean latency
)

var sortNames = []string{"all", "io", "reads", "writes", "rbytes", "wbytes", "avg"}

// ParseSortKey accepts the names SortKeys lists.
func ParseSortKey(s string) (SortKey, error) {
	if i := slices.Index(sortNames, s); i >= 0 {
		return SortKey(i), nil
	}
	return 0, fmt.Errorf("sort key %s: use one of %s", flagval.Quote(s), strings.Join(sortNames, ", "))
}

// SortKeys lists the names ParseSortKey accepts.
func SortKeys() []string { return slices.Clone(sortNames) }

func (k SortKey) value(r *Row) (uint64, uint64) {
	io, bytes := r.Reads+r.Writes, r.ReadBytes+r.WriteBytes
	switch k {
	case ByIO:
		return io, bytes
	case ByReads:
		return r.Reads, r.ReadBytes
	case ByWrites:
		return r.Writes, r.WriteBytes
	case ByRBytes:
		return r.ReadBytes, r.Reads
	case ByWBytes:
		return r.WriteBytes, r.Writes
	case ByAvg:
		return uint64(r.Avg()), io
	}
	return bytes, io
}

// SortRows orders rows by key, largest first, ties by pid, name and disk,
// and keeps the first n (all when n <= 0).
func SortRows(rows []Row, key SortKey, n int) []Row {
	slices.SortFunc(rows, func(a, b Row) int {
		a1, a2 := key.value(&a)
		b1, b2 := key.value(&b)
		if c := cmp.Compare(b1, a1); c != 0 {
			return c
		}
		if c := cmp.Compare(b2, a2); c != 0 {
			return c
		}
		if c := cmp.Compare(a.PID, b.PID); c != 0 {
			return c
		}
		if c := strings.Compare(a.Comm, b.Comm); c != 0 {
			return c
		}
		return strings.Compare(a.Disk, b.Disk)
	})
	if n > 0 && len(rows) > n {
		rows = rows[:n]
	}
	return rows
}
