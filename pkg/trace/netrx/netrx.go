// Package netrx shows where the kernel processes received packets: per
// interface, RX queue and CPU, the packets and bytes the stack received
// (net:netif_receive_skb, on the CPU RPS/RFS chose) and the NAPI polls
// (napi:napi_poll), with those that used their whole budget, so a user
// sees whether RSS, RPS and RFS spread the load.
package netrx

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// Tool describes netrx to its command, to `bpfkit check` and to serve.
var Tool = tool.Descriptor{
	Name:    "netrx",
	Kind:    tool.Sampler,
	Summary: "Received packets and bytes per interface, RX queue and CPU, and NAPI polls that used their whole budget",
	Spec:    loadNetrx,
	Metrics: []string{"bpfkit_netrx_packets_total"},
	Hooks: loader.Options{Alternatives: [][]string{ // BTF tracepoints, else raw ones
		{netrxProgNetifReceiveSkbBtf, netrxProgNetifReceiveSkbRaw},
		{netrxProgNapiPollBtf, netrxProgNapiPollRaw},
	}},
}

// Config tunes netrx.
type Config struct {
	Debug bool
}

// NoQueue is the Queue of a Count when the driver recorded no RX queue,
// and of NAPI polls.
const NoQueue = -1

// Count is what one CPU did for one interface's RX queue.
type Count struct {
	Netns   uint32 // the interface's network namespace inode; 0 for a CPU's backlog
	Ifindex uint32
	Iface   string // "backlog" for a CPU's backlog polls (RPS, netif_rx)
	Queue   int32  // NoQueue: none recorded
	CPU     uint32
	Packets uint64 // sk_buffs the stack received (a GRO-merged one counts once)
	Bytes   uint64 // their length from the network header on
	Polls   uint64 // NAPI polls (Queue is NoQueue)
	Full    uint64 // of which used their whole budget
}

type key = netrxNetrxKey

// Tracer counts from New until Close.
type Tracer struct {
	objs *loader.Objects
	maps netrxMaps
	prev map[key]Count
}

// New loads netrx's programs and attaches them.
func New(cfg Config) (*Tracer, error) {
	spec, err := loadNetrx()
	if err != nil {
		return nil, err
	}
	objs, err := Tool.Load(spec, loader.Options{RingSize: 4096, Debug: cfg.Debug})
	if err != nil {
		return nil, err
	}
	t := &Tracer{objs: objs, prev: map[key]Count{}}
	if err := objs.Assign(&t.maps); err != nil {
		objs.Close()
		return nil, err
	}
	return t, nil
}

// Close detaches and frees everything.
func (t *Tracer) Close() error { return t.objs.Close() }

// Health reports entries not counted (table full), skipped runs and
// missing hooks.
func (t *Tracer) Health() loader.Health {
	h := t.objs.Health()
	h.Full = fmt.Sprintf("packets or polls not counted: the kernel table (%d rows) is full", t.maps.Counts.MaxEntries())
	return h
}

func (t *Tracer) totals() (map[key]Count, error) {
	out := map[key]Count{}
	err := read(t.maps.Counts, func(k *netrxNetrxKey, c Count) { out[*k] = c })
	return out, err
}

// Read calls fn with every row counted by objects loaded from Tool.Spec.
func Read(objs *loader.Objects, fn func(Count)) error {
	var maps netrxMaps
	if err := objs.Assign(&maps); err != nil {
		return err
	}
	return read(maps.Counts, func(_ *netrxNetrxKey, c Count) { fn(c) })
}

// read calls fn with every row of the counts map.
func read(counts *ebpf.Map, fn func(k *netrxNetrxKey, c Count)) error {
	if err := loader.ReadAll(counts, func(k *netrxNetrxKey, v *netrxNetrxVal) {
		fn(k, Count{Netns: k.Netns, Ifindex: k.Ifindex, Iface: string(trace.CString(v.Name[:])),
			Queue: k.Queue, CPU: k.Cpu, Packets: v.Packets, Bytes: v.Bytes, Polls: v.Polls, Full: v.Full})
	}); err != nil {
		return fmt.Errorf("read receive counts: %w", err)
	}
	return nil
}

// Totals returns everything counted since New, sorted.
func (t *Tracer) Totals() ([]Count, error) {
	m, err := t.totals()
	if err != nil {
		return nil, err
	}
	out := make([]Count, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	sortCounts(out)
	return out, nil
}

// Delta returns what was counted since the previous call (or New).
func (t *Tracer) Delta() ([]Count, error) {
	now, err := t.totals()
	if err != nil {
		return nil, err
	}
	var out []Count
	for k, c := range now {
		p := t.prev[k]
		c.Packets -= p.Packets
		c.Bytes -= p.Bytes
		c.Polls -= p.Polls
		c.Full -= p.Full
		if c.Packets > 0 || c.Polls > 0 {
			out = append(out, c)
		}
	}
	t.prev = now
	sortCounts(out)
	return out, nil
}

// sortCounts orders by namespace, interface, queue, CPU.
func sortCounts(cs []Count) {
	slices.SortFunc(cs, func(a, b Count) int {
		return cmp.Or(cmp.Compare(a.Netns, b.Netns), cmp.Compare(a.Iface, b.Iface), cmp.Compare(a.Ifindex, b.Ifindex),
			cmp.Compare(a.Queue, b.Queue), cmp.Compare(a.CPU, b.CPU))
	})
}

// Row is one line of output: a Count over an interval.
type Row struct {
	Time     time.Time // end of the interval
	Interval time.Duration
	Count
}
