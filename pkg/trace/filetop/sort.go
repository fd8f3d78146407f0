package filetop

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/bpfkit/bpfkit/internal/flagval"
)

// SortKey orders rows, largest first.
type SortKey int

const (
	ByAll    SortKey = iota // read + write bytes, then reads + writes
	ByReads                 // read calls
	ByWrites                // write calls
	ByRBytes                // bytes read
	ByWBytes                // bytes written
)

var sortNames = []string{"all", "reads", "writes", "rbytes", "wbytes"}

// ParseSortKey accepts all, reads, writes, rbytes or wbytes.
func ParseSortKey(s string) (SortKey, error) {
	if i := slices.Index(sortNames, s); i >= 0 {
		return SortKey(i), nil
	}
	return 0, fmt.Errorf("sort key %s: use one of %s", flagval.Quote(s), strings.Join(sortNames, ", "))
}

func (k SortKey) String() string {
	if int(k) < len(sortNames) {
		return sortNames[k]
	}
	return fmt.Sprintf("SortKey(%d)", int(k))
}

// SortKeys lists the names ParseSortKey accepts.
func SortKeys() []string { return slices.Clone(sortNames) }

func (k SortKey) value(r *Row) (uint64, uint64) {
	switch k {
	case ByReads:
		return r.Reads, r.ReadBytes
	case ByWrites:
		return r.Writes, r.WriteBytes
	case ByRBytes:
		return r.ReadBytes, r.Reads
	case ByWBytes:
		return r.WriteBytes, r.Writes
	}
	return r.ReadBytes + r.WriteBytes, r.Reads + r.Writes
}

// Sort orders rows by key, largest first; ties go by the key's companion
// (bytes for calls, calls for bytes), then by PID, TID and path, so the
// order is always the same.
func Sort(rows []Row, key SortKey) {
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
		if c := cmp.Compare(a.TID, b.TID); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
}

// Top sorts rows by key and keeps the first n (all when n <= 0).
func Top(rows []Row, key SortKey, n int) []Row {
	Sort(rows, key)
	if n > 0 && len(rows) > n {
		rows = rows[:n]
	}
	return rows
}
