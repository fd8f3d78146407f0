package bio

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/bpfkit/bpfkit/pkg/loader"
)

// Hist is one latency histogram: Buckets[i] counts latencies v with
// floor(log2(v)) == i (bucket 0 also holds 0), v in the unit.
type Hist struct {
	Disk    string // with Config.ByDisk
	Flags   string // with Config.ByFlags: the requests' rwbs
	Buckets [Slots]uint64
	key     bioBioHistKey
}

// Total is the number of requests in h.
func (h *Hist) Total() uint64 {
	var n uint64
	for _, c := range h.Buckets {
		n += c
	}
	return n
}

// Latency keeps histograms of block I/O latency (biolatency).
type Latency struct {
	*tracer
	cfg  Config
	prev map[bioBioHistKey]Hist
}

// NewLatency loads and attaches biolatency's programs.
func NewLatency(cfg Config) (*Latency, error) {
	t, err := newTracer(cfg, modeHist, 4096) // no events: the smallest ring
	if err != nil {
		return nil, err
	}
	return &Latency{tracer: t, cfg: cfg, prev: map[bioBioHistKey]Hist{}}, nil
}

// Unit names the buckets' unit: "usecs" or "msecs".
func (l *Latency) Unit() string {
	if l.cfg.Milliseconds {
		return "msecs"
	}
	return "usecs"
}

// Totals returns the histograms since the start, by disk then flags.
func (l *Latency) Totals() ([]Hist, error) {
	var out []Hist
	err := loader.ReadAll(l.maps.Hists, func(k *bioBioHistKey, v *bioBioHist) {
		h := Hist{key: *k}
		copy(h.Buckets[:], v.Slots[:])
		if l.cfg.ByDisk {
			h.Disk = l.disks.Name(k.Dev)
		}
		if l.cfg.ByFlags {
			h.Flags = string(l.flags.appendRWBS(nil, k.Flags))
		}
		out = append(out, h)
	})
	if err != nil {
		return nil, fmt.Errorf("read histograms: %w", err)
	}
	slices.SortFunc(out, func(a, b Hist) int {
		if c := cmp.Compare(a.Disk, b.Disk); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Flags, b.Flags); c != 0 {
			return c
		}
		return cmp.Compare(a.key.Flags, b.key.Flags)
	})
	return out, nil
}

// Delta returns what each histogram gained since the previous call (or
// since the start), leaving out those that gained nothing. The kernel's
// counters only grow, so nothing is lost between calls.
func (l *Latency) Delta() ([]Hist, error) {
	now, err := l.Totals()
	if err != nil {
		return nil, err
	}
	var out []Hist
	next := make(map[bioBioHistKey]Hist, len(now))
	for _, h := range now {
		next[h.key] = h
		p := l.prev[h.key]
		for i := range h.Buckets {
			h.Buckets[i] -= p.Buckets[i]
		}
		if h.Total() > 0 {
			out = append(out, h)
		}
	}
	l.prev = next
	return out, nil
}

// Report is a histogram at a time, for printing.
type Report struct {
	Time time.Time
	Unit string
	Hist
}
