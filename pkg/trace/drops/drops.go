// Package drops reports every packet the kernel frees as dropped
// (skb:kfree_skb), with the reason the kernel gives, decoded from the
// running kernel's BTF (enum skb_drop_reason differs from kernel to
// kernel), the function that dropped it (from /proc/kallsyms), and the
// packet's protocol, addresses, ports, interface and network namespace.
// In summary mode the kernel only counts drops per reason and location.
// Either mode can be kept to one network namespace, in the kernel.
package drops

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
	"github.com/bpfkit/bpfkit/pkg/trace"
	"github.com/bpfkit/bpfkit/pkg/trace/symbol"
)

// Tool describes drops to its command, to `bpfkit check` and to serve.
var Tool = tool.Descriptor{
	Name:    "drops",
	Kind:    tool.Stream,
	Summary: "Show every packet the kernel drops, with the kernel's reason, the dropping function, addresses and namespace",
	Spec:    loadDrops,
	Metrics: []string{"bpfkit_drops_total"},
	// skb:kfree_skb as a BTF tracepoint, else a raw one.
	Hooks: loader.Options{Alternatives: [][]string{{dropsProgKfreeSkbBtf, dropsProgKfreeSkbRaw}}},
}

// NotSpecified is the reason reported by kernels whose tracepoint gives
// none (before 5.17), as later kernels name a drop without a reason.
const NotSpecified = "NOT_SPECIFIED"

// Config chooses the mode and the namespace.
type Config struct {
	Summary  bool   // count per reason and location only: no events
	Netns    uint32 // only drops in this network namespace (inode, as in /proc/PID/ns/net); 0: all
	RingSize int    // bytes; 0 for loader.DefaultRingSize
	Debug    bool
}

// Event is one dropped packet.
type Event struct {
	Time     time.Time
	Reason   string // the enumerator without SKB_DROP_REASON_, e.g. NO_SOCKET
	Location string // the function that freed the packet
	Protocol string // TCP, UDP, ICMP, ICMPv6, ip/N, ARP, 0xNNNN; empty if none
	Saddr    netip.Addr
	Daddr    netip.Addr
	Sport    uint16
	Dport    uint16
	HasPorts bool
	Iface    string
	Netns    uint32 // network namespace inode (as in /proc/PID/ns/net), 0 unknown
}

// Count is the drops of one reason at one location.
type Count struct {
	Reason   string
	Location string
	Count    uint64
}

// Tracer reports from New until Close.
type Tracer struct {
	objs    *loader.Objects
	maps    dropsMaps
	clock   trace.Clock
	reasons Reasons
	syms    *symbol.Kernel
	locs    map[uint64]string
	ev      Event
	prev    map[[2]string]uint64
	summary bool
}

// New loads drops' program and attaches it to skb:kfree_skb.
func New(cfg Config) (*Tracer, error) {
	spec, err := loadDrops()
	if err != nil {
		return nil, err
	}
	if err := loader.Preflight(); err != nil {
		return nil, err
	}
	reasons, err := KernelReasons()
	if err != nil {
		return nil, err
	}
	syms, err := symbol.NewKernel()
	if err != nil {
		return nil, err
	}
	ring := cfg.RingSize
	if cfg.Summary {
		ring = 4096 // no events: the smallest ring
	}
	var knobs dropsVariableSpecs
	if err := spec.Assign(&knobs); err != nil {
		return nil, err
	}
	if err := knobs.Summary.Set(cfg.Summary); err != nil {
		return nil, fmt.Errorf("configure drops: %w", err)
	}
	if err := knobs.OnlyNetns.Set(cfg.Netns); err != nil {
		return nil, fmt.Errorf("configure drops: %w", err)
	}
	objs, err := Tool.Load(spec, loader.Options{RingSize: ring, Debug: cfg.Debug})
	if err != nil {
		return nil, err
	}
	t := &Tracer{objs: objs, clock: trace.NewClock(), reasons: reasons, syms: syms,
		locs: map[uint64]string{}, prev: map[[2]string]uint64{}, summary: cfg.Summary}
	if err := objs.Assign(&t.maps); err != nil {
		objs.Close()
		return nil, err
	}
	return t, nil
}

// HasReasons reports whether this kernel gives drop reasons (5.17+);
// without, every drop is NOT_SPECIFIED.
func (t *Tracer) HasReasons() bool { return t.reasons.names != nil }

// Health reports losses and missing hooks. In summary mode Lost counts
// the drops the summary table had no room for.
func (t *Tracer) Health() loader.Health {
	h := t.objs.Health()
	if t.summary {
		h.Full = fmt.Sprintf("drops not counted: the kernel table (%d reason+location pairs) is full", t.maps.Counts.MaxEntries())
	}
	return h
}

// Close detaches and frees everything.
func (t *Tracer) Close() error { return t.objs.Close() }

// Run streams drops to emit until ctx ends or emit fails (loader.ErrStop
// ends it without an error).
func (t *Tracer) Run(ctx context.Context, opts loader.StreamOptions, emit func(*Event) error) (loader.Stats, error) {
	return t.objs.Stream(ctx, opts, func(raw []byte) error {
		if err := t.decode(raw); err != nil {
			return err
		}
		return emit(&t.ev)
	})
}

const recordSize = int(unsafe.Sizeof(dropsDropEvent{}))

func (t *Tracer) decode(raw []byte) error {
	if len(raw) < recordSize {
		return fmt.Errorf("short drops record: %d bytes", len(raw))
	}
	h := (*dropsDropEvent)(unsafe.Pointer(&raw[0]))
	e := &t.ev
	*e = Event{
		Time:     t.clock.Time(h.BootNs),
		Reason:   t.reasons.Name(h.Reason),
		Location: t.location(h.Location),
		Protocol: protocol(h.Ethertype, h.Family, h.L4proto),
		Iface:    string(trace.CString(h.Iface[:])),
		Netns:    h.Netns,
	}
	switch h.Family {
	case 4:
		e.Saddr = netip.AddrFrom4([4]byte(h.Saddr[:4]))
		e.Daddr = netip.AddrFrom4([4]byte(h.Daddr[:4]))
	case 6:
		e.Saddr, e.Daddr = netip.AddrFrom16(h.Saddr), netip.AddrFrom16(h.Daddr)
	}
	if h.HasPorts != 0 {
		e.Sport, e.Dport, e.HasPorts = h.Sport, h.Dport, true
	}
	return nil
}

// location names the function at a return address, cached.
func (t *Tracer) location(addr uint64) string {
	name, ok := t.locs[addr]
	if !ok {
		name = t.syms.Name(addr)
		t.locs[addr] = name
	}
	return name
}

// protocol names the packet's protocol: its L4 protocol when it has an
// IP header, else its ethertype.
func protocol(ethertype uint16, family, l4 uint8) string {
	if family != 0 {
		switch l4 {
		case 1:
			return "ICMP"
		case 6:
			return "TCP"
		case 17:
			return "UDP"
		case 58:
			return "ICMPv6"
		case 132:
			return "SCTP"
		}
		return "ip/" + strconv.Itoa(int(l4))
	}
	switch ethertype {
	case 0:
		return ""
	case 0x0800:
		return "IPv4"
	case 0x86dd:
		return "IPv6"
	case 0x0806:
		return "ARP"
	}
	return fmt.Sprintf("0x%04x", ethertype)
}

// Totals returns the drops counted in summary mode since New, per reason
// and location (function), most first.
func (t *Tracer) Totals() ([]Count, error) {
	sum := map[[2]string]uint64{}
	if err := readCounts(t.maps.Counts, func(reason uint32, location, n uint64) {
		sum[[2]string{t.reasons.Name(reason), t.location(location)}] += n
	}); err != nil {
		return nil, err
	}
	return sorted(sum), nil
}

// readCounts calls fn for each (reason, location) of the summary table
// (counts), with its count summed over the CPUs.
func readCounts(counts *ebpf.Map, fn func(reason uint32, location, n uint64)) error {
	var (
		k   dropsDropKey
		per []uint64
	)
	it := counts.Iterate()
	for it.Next(&k, &per) {
		var n uint64
		for _, c := range per {
			n += c
		}
		fn(k.Reason, k.Location, n)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read drop counts: %w", err)
	}
	return nil
}

// SummarySpec is the drops object set for summary mode: for serve, which
// loads it with the descriptor's hooks and reads it with ReasonTotals.
func SummarySpec() (*ebpf.CollectionSpec, error) {
	spec, err := loadDrops()
	if err != nil {
		return nil, err
	}
	var knobs dropsVariableSpecs
	if err := spec.Assign(&knobs); err != nil {
		return nil, err
	}
	if err := knobs.Summary.Set(true); err != nil {
		return nil, fmt.Errorf("configure drops: %w", err)
	}
	return spec, nil
}

// ReasonTotals reads the drops counted by objects loaded from SummarySpec,
// per reason name.
func ReasonTotals(objs *loader.Objects, reasons Reasons) (map[string]uint64, error) {
	var maps dropsMaps
	if err := objs.Assign(&maps); err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	err := readCounts(maps.Counts, func(reason uint32, _, n uint64) { out[reasons.Name(reason)] += n })
	return out, err
}

// Delta returns the drops counted since the previous call (or New).
func (t *Tracer) Delta() ([]Count, error) {
	now, err := t.Totals()
	if err != nil {
		return nil, err
	}
	d := map[[2]string]uint64{}
	next := map[[2]string]uint64{}
	for _, c := range now {
		k := [2]string{c.Reason, c.Location}
		next[k] = c.Count
		if n := c.Count - t.prev[k]; n > 0 {
			d[k] = n
		}
	}
	t.prev = next
	return sorted(d), nil
}

func sorted(m map[[2]string]uint64) []Count {
	out := make([]Count, 0, len(m))
	for k, n := range m {
		out = append(out, Count{Reason: k[0], Location: k[1], Count: n})
	}
	slices.SortFunc(out, func(a, b Count) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Reason+" "+a.Location, b.Reason+" "+b.Location)
	})
	return out
}

// Reasons names drop reasons as the running kernel defines them.
type Reasons struct {
	names map[uint32]string // nil: this kernel has no reasons
}

// KernelReasons reads enum skb_drop_reason from the running kernel's BTF
// (/sys/kernel/btf/vmlinux). A kernel without it (before 5.17) gives a
// Reasons that names every drop NOT_SPECIFIED.
func KernelReasons() (Reasons, error) {
	spec, err := loader.KernelBTF()
	if err != nil {
		return Reasons{}, err
	}
	return reasonsFrom(spec)
}

func reasonsFrom(spec *btf.Spec) (Reasons, error) {
	var enum *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &enum); err != nil {
		if errors.Is(err, btf.ErrNotFound) {
			return Reasons{}, nil
		}
		return Reasons{}, fmt.Errorf("read enum skb_drop_reason from the kernel's BTF: %w", err)
	}
	r := Reasons{names: make(map[uint32]string, len(enum.Values))}
	for _, v := range enum.Values {
		name := strings.TrimPrefix(v.Name, "SKB_DROP_REASON_")
		name = strings.TrimPrefix(name, "SKB_") // SKB_CONSUMED, SKB_NOT_DROPPED_YET
		r.names[uint32(v.Value)] = name
	}
	return r, nil
}

// Name is reason's enumerator name, "reason N" (or "subsys S reason N" for
// a subsystem's reason, 6.5+) when this kernel's enum has no such value.
func (r Reasons) Name(reason uint32) string {
	if r.names == nil {
		return NotSpecified
	}
	if n, ok := r.names[reason]; ok {
		return n
	}
	if s := reason >> 16; s != 0 {
		return "subsys " + strconv.Itoa(int(s)) + " reason " + strconv.Itoa(int(reason&0xffff))
	}
	return "reason " + strconv.Itoa(int(reason))
}
