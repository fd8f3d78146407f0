// Package tcp is tcplife, tcpstates and tcpretrans: TCP connections, their
// state changes and their retransmitted segments, from tracepoints only
// (sock:inet_sock_set_state, tcp:tcp_retransmit_skb and accept's exits).
// Each event carries the pid and comm of the socket's owner, remembered when
// the socket is seen in process context (bpf/tcp.bpf.c explains the rule),
// not of whatever task a softirq interrupted.
package tcp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// The three tools share one BPF object; each loads only its programs.
var (
	Life = tool.Descriptor{
		Name:    "tcplife",
		Kind:    tool.Stream,
		Summary: "Show each TCP connection as it closes: its owner, addresses, bytes each way and duration",
		Spec:    specOf(tcpProgSetState, tcpProgExitAccept, tcpProgExitAccept4),
	}
	States = tool.Descriptor{
		Name:    "tcpstates",
		Kind:    tool.Stream,
		Summary: "Show every TCP state change with the socket's owner and the time spent in the old state",
		Spec:    specOf(tcpProgSetState, tcpProgExitAccept, tcpProgExitAccept4),
	}
	Retrans = tool.Descriptor{
		Name:    "tcpretrans",
		Kind:    tool.Stream,
		Summary: "Show each retransmitted TCP segment and tail loss probe, or count them per connection",
		Spec:    specOf(tcpProgRetransmit, tcpProgSetState, tcpProgExitAccept, tcpProgExitAccept4),
	}
)

// specOf returns the BPF object with only the programs named.
func specOf(progs ...string) func() (*ebpf.CollectionSpec, error) {
	return func() (*ebpf.CollectionSpec, error) {
		spec, err := loadTcp()
		if err != nil {
			return nil, err
		}
		keep := map[string]bool{}
		for _, p := range progs {
			keep[p] = true
		}
		for name := range spec.Programs {
			if !keep[name] {
				delete(spec.Programs, name)
			}
		}
		return spec, nil
	}
}

// MaxPorts is how many ports -L and -D take each.
const MaxPorts = 8

// Config selects connections, in the kernel.
type Config struct {
	PID         uint32   // owner process; 0 for any
	Cgroup      string   // owner's cgroup v2 directory; "" for any
	LocalPorts  []uint16 // at most MaxPorts; none for any
	RemotePorts []uint16
	RingSize    int  // bytes; 0 for loader.DefaultRingSize
	Debug       bool // full verifier log on rejection
}

// Kind tells what an event reports.
type Kind uint8

const (
	KindLife      = Kind(tcpTcpKindTCP_KIND_LIFE)
	KindState     = Kind(tcpTcpKindTCP_KIND_STATE)
	KindRetrans   = Kind(tcpTcpKindTCP_KIND_RETRANS)
	KindLossProbe = Kind(tcpTcpKindTCP_KIND_LOSS_PROBE)
)

// String is tcpretrans' kind key: retrans or loss_probe.
func (k Kind) String() string {
	switch k {
	case KindLife:
		return "life"
	case KindState:
		return "state"
	case KindRetrans:
		return "retrans"
	case KindLossProbe:
		return "loss_probe"
	}
	return fmt.Sprintf("kind%d", uint8(k))
}

// State is a TCP state, as the kernel numbers them.
type State uint8

var stateNames = [...]string{
	1: "ESTAB", 2: "SYN-SENT", 3: "SYN-RECV", 4: "FIN-WAIT-1", 5: "FIN-WAIT-2",
	6: "TIME-WAIT", 7: "CLOSE", 8: "CLOSE-WAIT", 9: "LAST-ACK", 10: "LISTEN",
	11: "CLOSING", 12: "NEW-SYN-RECV",
}

// String names the state as ss(8) does (ESTAB, SYN-SENT, TIME-WAIT...),
// except CLOSE, which ss shows as UNCONN.
func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return fmt.Sprintf("STATE%d", uint8(s))
}

// The states, for tests and callers.
const (
	Established State = iota + 1
	SynSent
	SynRecv
	FinWait1
	FinWait2
	TimeWait
	Close
	CloseWait
	LastAck
	Listen
	Closing
	NewSynRecv
)

// Event is one closed connection (tcplife), state change (tcpstates) or
// retransmission (tcpretrans).
type Event struct {
	Time     time.Time
	Kind     Kind
	PID      uint32 // the socket's owner; 0 if not known
	Comm     []byte
	Family   uint16 // unix.AF_INET or unix.AF_INET6
	Src, Dst netip.AddrPort
	OldState State // tcpstates; the state at the retransmission for tcpretrans
	NewState State
	// Duration is the connection's life for tcplife (from the first state
	// change seen), the time spent in OldState for tcpstates.
	Duration time.Duration
	TxBytes  uint64 // payload acknowledged by the peer (tcplife)
	RxBytes  uint64 // payload received (tcplife)
}

// Tracer is one loaded tool.
type Tracer struct {
	objs  *loader.Objects
	maps  tcpMaps
	clock trace.Clock
	ev    Event
}

// NewLife loads tcplife.
func NewLife(cfg Config) (*Tracer, error) {
	return load(&Life, cfg, func(k *tcpVariableSpecs) error { return k.WantLife.Set(uint8(1)) })
}

// NewStates loads tcpstates.
func NewStates(cfg Config) (*Tracer, error) {
	return load(&States, cfg, func(k *tcpVariableSpecs) error { return k.WantStates.Set(uint8(1)) })
}

// NewRetrans loads tcpretrans; with count, retransmissions are summed per
// connection in the kernel (Counts) instead of streamed.
func NewRetrans(cfg Config, count bool) (*Tracer, error) {
	var c uint8
	if count {
		c = 1
	}
	return load(&Retrans, cfg, func(k *tcpVariableSpecs) error { return k.CountRetrans.Set(c) })
}

func portList(ports []uint16, flag string) ([MaxPorts]uint16, error) {
	var out [MaxPorts]uint16
	if len(ports) > MaxPorts {
		return out, fmt.Errorf("%d ports given to %s: give at most %d", len(ports), flag, MaxPorts)
	}
	for i, p := range ports {
		if p == 0 {
			return out, fmt.Errorf("port 0 given to %s: give ports from 1 to 65535", flag)
		}
		out[i] = p
	}
	return out, nil
}

// load loads d's programs with the filters of cfg and the tool's own knob
// set by knob.
func load(d *tool.Descriptor, cfg Config, knob func(*tcpVariableSpecs) error) (*Tracer, error) {
	lports, err := portList(cfg.LocalPorts, "--local-port")
	if err != nil {
		return nil, err
	}
	dports, err := portList(cfg.RemotePorts, "--remote-port")
	if err != nil {
		return nil, err
	}
	var cgroup uint64 // the object's default: any
	if cfg.Cgroup != "" {
		if cgroup, err = loader.CgroupID(cfg.Cgroup); err != nil {
			return nil, err
		}
	}
	spec, err := d.Spec()
	if err != nil {
		return nil, err
	}
	var knobs tcpVariableSpecs
	if err := spec.Assign(&knobs); err != nil {
		return nil, err
	}
	if err := errors.Join(
		knob(&knobs),
		knobs.Lports.Set(lports), knobs.Dports.Set(dports),
		knobs.FilterPid.Set(cfg.PID),
		knobs.FilterCgroup.Set(cgroup),
	); err != nil {
		return nil, fmt.Errorf("configure %s: %w", d.Name, err)
	}
	objs, err := d.Load(spec, loader.Options{RingSize: cfg.RingSize, Debug: cfg.Debug})
	if err != nil {
		return nil, err
	}
	t := &Tracer{objs: objs, clock: trace.NewClock()}
	if err := objs.Assign(&t.maps); err != nil {
		objs.Close()
		return nil, err
	}
	return t, nil
}

// Health reports lost events, skipped runs and missing hooks.
func (t *Tracer) Health() loader.Health { return t.objs.Health() }

// Close detaches the programs and frees the maps.
func (t *Tracer) Close() error { return t.objs.Close() }

// Run streams events until ctx ends or emit fails. The event is reused:
// copy what outlives emit.
func (t *Tracer) Run(ctx context.Context, opts loader.StreamOptions, emit func(*Event) error) (loader.Stats, error) {
	return t.objs.Stream(ctx, opts, func(raw []byte) error {
		if err := decode(&t.ev, raw, t.clock); err != nil {
			return err
		}
		return emit(&t.ev)
	})
}

const recordSize = int(unsafe.Sizeof(tcpTcpEvent{}))

func decode(e *Event, raw []byte, clock trace.Clock) error {
	if len(raw) < recordSize {
		return fmt.Errorf("short tcp record: %d bytes", len(raw))
	}
	h := (*tcpTcpEvent)(unsafe.Pointer(&raw[0]))
	e.Time = clock.Time(h.BootNs)
	e.Kind = Kind(h.Kind)
	e.PID = h.Pid
	e.Comm = trace.CString(h.Comm[:])
	e.Family = h.Family
	e.Src = netip.AddrPortFrom(addr(h.Family, &h.Saddr), h.Sport)
	e.Dst = netip.AddrPortFrom(addr(h.Family, &h.Daddr), h.Dport)
	e.OldState, e.NewState = State(h.OldState), State(h.NewState)
	e.Duration = time.Duration(h.DurationNs)
	e.TxBytes, e.RxBytes = h.TxBytes, h.RxBytes
	return nil
}

const afInet6 = 10

func addr(family uint16, b *[16]uint8) netip.Addr {
	if family == afInet6 {
		return netip.AddrFrom16(*b)
	}
	return netip.AddrFrom4([4]byte(b[:4]))
}

// Count is one connection's retransmissions (tcpretrans --count).
type Count struct {
	PID        uint32
	Comm       string
	Src, Dst   netip.AddrPort
	Retrans    uint64
	LossProbes uint64
}

// Counts reads the per-connection sums of a tracer made by NewRetrans with
// count.
func (t *Tracer) Counts() ([]Count, error) {
	var (
		k   tcpTcpConnKey
		v   tcpTcpConnCount
		out []Count
	)
	it := t.maps.Conns.Iterate()
	for it.Next(&k, &v) {
		out = append(out, Count{
			PID: k.Pid, Comm: string(trace.CString(v.Comm[:])),
			Src:     netip.AddrPortFrom(addr(k.Family, &k.Saddr), k.Sport),
			Dst:     netip.AddrPortFrom(addr(k.Family, &k.Daddr), k.Dport),
			Retrans: v.Retrans, LossProbes: v.LossProbes,
		})
	}
	return out, it.Err()
}
