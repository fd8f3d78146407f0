package xdpbench

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/bpfkit/bpfkit/pkg/loader/testkit"
	"github.com/bpfkit/bpfkit/pkg/xdp"
)

// bpfFTestXDPLiveFrames is BPF_F_TEST_XDP_LIVE_FRAMES (Linux 5.18).
const bpfFTestXDPLiveFrames = 1 << 1

// xdpMD is struct xdp_md, the context of a live-frames run.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// countingDrop is the floor of the live benchmark: count the frame in a
// per-CPU counter (the rate needs it) and drop it.
func countingDrop(b *testing.B) (*ebpf.Program, func() uint64) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "count_drop", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{
			asm.StoreImm(asm.R10, -4, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 1).WithSymbol("out"),
			asm.Return(),
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { prog.Close() })
	return prog, func() uint64 {
		var per []uint64
		if err := m.Lookup(uint32(0), &per); err != nil {
			b.Fatal(err)
		}
		var n uint64
		for _, v := range per {
			n += v
		}
		return n
	}
}

// BenchmarkLive transmits frames from namespace a over a veth with a
// BPF_PROG_RUN live-frames generator (XDP_TX, xdp-trafficgen's mechanism)
// and reports how many per second the program on the far end (namespace b)
// dropped: a counting XDP_DROP, and bpfkit with 100,000 rules. Bounded:
// frames per run = b.N (use -benchtime 2000000x).
func BenchmarkLive(b *testing.B) {
	testkit.RequireRoot(b)
	if !testkit.KernelAtLeast(5, 18) {
		testkit.Skip(b, "live frames need Linux 5.18")
	}
	a, sink := testkit.NewNetNS(b, "la"), testkit.NewNetNS(b, "lb")
	testkit.Veth(b, a, "va", "", sink, "vb", "")
	gen, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "xdp_tx", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 3), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer gen.Close()
	var va int
	if err := a.Do(func() error {
		l, err := netlink.LinkByName("va")
		if err == nil {
			va = l.Attrs().Index
		}
		return err
	}); err != nil {
		b.Fatal(err)
	}
	transmit := func(b *testing.B, n int) time.Duration {
		var d time.Duration
		err := a.Do(func() error {
			start := time.Now()
			_, err := gen.Run(&ebpf.RunOptions{
				Data:    hit,
				Repeat:  uint32(n),
				Flags:   bpfFTestXDPLiveFrames,
				Context: xdpMD{DataEnd: uint32(len(hit)), IngressIfindex: uint32(va)},
			})
			d = time.Since(start)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	attach := func(b *testing.B, prog *ebpf.Program) func() {
		var l link.Link
		if err := sink.Do(func() error {
			ifc, err := netlink.LinkByName("vb")
			if err != nil {
				return err
			}
			l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Attrs().Index})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		return func() { l.Close() }
	}
	measure := func(b *testing.B, count func() uint64) {
		before := count()
		d := transmit(b, b.N)
		time.Sleep(50 * time.Millisecond) // let the receiving side drain
		dropped := count() - before
		b.ReportMetric(float64(dropped)/d.Seconds()/1e6, "Mpps-dropped")
		b.ReportMetric(float64(dropped)/float64(b.N), "dropped/sent")
	}

	drop, dropCount := countingDrop(b)
	f, err := xdp.Load(xdp.Options{Rules: xdp.ManyRules(100_000)})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	bpfkitCount := func() uint64 {
		s, err := f.Stats()
		if err != nil {
			b.Fatal(err)
		}
		var n uint64
		for _, r := range s.Rules {
			n += r.Packets
		}
		return n
	}
	time.Sleep(2 * time.Second)
	for range rounds {
		b.Run("floor-count-drop", func(b *testing.B) {
			detach := attach(b, drop)
			defer detach()
			measure(b, dropCount)
		})
		b.Run("bpfkit-100000-rules", func(b *testing.B) {
			detach := attach(b, f.Program())
			defer detach()
			measure(b, bpfkitCount)
		})
	}
}
