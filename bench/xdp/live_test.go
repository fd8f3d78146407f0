package xdpbench

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/xdp"
)

// bpfFTestXDPLiveFrames is BPF_F_TEST_XDP_LIVE_FRAMES (Linux 5.18).
const bpfFTestXDPLiveFrames = 1 << 1

// xdpMD is struct xdp_md, the context of a live-frames run.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

const (
	// liveBudget bounds the whole live benchmark: no round starts after it.
	liveBudget = 10 * time.Minute
	// maxLiveFrames bounds one run (b.N frames).
	maxLiveFrames = 20_000_000
)

// liveRun runs an XDP program with BPF_PROG_TEST_RUN and
// BPF_F_TEST_XDP_LIVE_FRAMES, repeat times on frame, and returns the
// kernel's time for the run: it counts the frames' way through the sending
// and the receiving veth (whose NAPI runs on this CPU when the generator
// flushes a batch) but leaves out the time the thread was scheduled out,
// most of the noise on a shared machine. cilium/ebpf's Program.Run does not
// return that time, and its Benchmark takes no flags.
func liveRun(prog *ebpf.Program, frame []byte, ctx *xdpMD, repeat uint32) (time.Duration, error) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		return 0, fmt.Errorf("the live benchmark runs on 64-bit machines only")
	}
	attr := struct { // the BPF_PROG_TEST_RUN part of union bpf_attr; pointers are __u64
		progFD, retval, dataSizeIn, dataSizeOut uint32
		dataIn, dataOut                         unsafe.Pointer
		repeat, duration, ctxSizeIn, ctxSizeOut uint32
		ctxIn, ctxOut                           unsafe.Pointer
		flags, cpu, batchSize                   uint32
	}{
		progFD: uint32(prog.FD()), dataSizeIn: uint32(len(frame)), dataIn: unsafe.Pointer(&frame[0]),
		repeat: repeat, ctxSizeIn: uint32(unsafe.Sizeof(*ctx)), ctxIn: unsafe.Pointer(ctx),
		flags: bpfFTestXDPLiveFrames,
	}
	if _, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_TEST_RUN, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr)); errno != 0 {
		return 0, fmt.Errorf("BPF_PROG_TEST_RUN with live frames: %w", errno)
	}
	// The kernel reports the mean per frame in whole nanoseconds.
	return time.Duration(attr.duration) * time.Duration(repeat), nil
}

// veth counts, per receive queue, the frames its XDP program dropped
// (rx_queue_N_xdp_drops, Linux 5.9+).
func vethXDPDrops(ns *testkit.NetNS, iface string) (uint64, error) {
	var stats map[string]uint64
	if err := ns.Do(func() (err error) {
		stats, err = testkit.EthtoolStats(iface)
		return err
	}); err != nil {
		return 0, err
	}
	var n uint64
	found := false
	for name, v := range stats {
		if strings.HasPrefix(name, "rx_queue_") && strings.HasSuffix(name, "_xdp_drops") {
			n += v
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("%s: no rx_queue_N_xdp_drops in its ethtool statistics", iface)
	}
	return n, nil
}

// xdpReturn is the two-instruction program that returns action.
func xdpReturn(b *testing.B, name string, action int32) *ebpf.Program {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: name, Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, action), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { prog.Close() })
	return prog
}

// nftCounter reads the packets of named counter "drops" of table family
// bpfkit_live in ns.
func nftCounter(ns *testkit.NetNS, family string) (uint64, error) {
	out, err := inNetNS(ns, "", "nft", "-j", "list", "counter", family, "bpfkit_live", "drops")
	if err != nil {
		return 0, err
	}
	var doc struct {
		Nftables []struct {
			Counter *struct{ Packets uint64 } `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return 0, fmt.Errorf("nft -j list counter: %w", err)
	}
	for _, o := range doc.Nftables {
		if o.Counter != nil {
			return o.Counter.Packets, nil
		}
	}
	return 0, fmt.Errorf("nft -j list counter: no counter in %s", out)
}

// liveSink is one way of dropping the generator's frames on the receiving
// veth: setup installs it and returns how many frames it has dropped so far
// and how to remove it.
type liveSink struct {
	name  string
	setup func(b *testing.B) (drops func() (uint64, error), remove func())
}

// BenchmarkLive transmits frames from namespace a over a veth with a
// BPF_PROG_RUN live-frames generator (XDP_TX, xdp-trafficgen's mechanism)
// and reports how many per second the sink on the far end (namespace b)
// dropped: a trivial XDP_DROP (the floor), bpfkit with 100,000 rules, the
// reference sinks (ref_test.go: parsing and counting, and that plus one hash
// lookup among 100,000 sources), xdp-tools' xdp-filter, and nftables. XDP drops are counted by the veth
// itself (ethtool statistics), nftables' by an nft counter. Sinks run in
// rounds with the floor before and after each, and each sink's rate is also
// reported as a ratio to the mean of those two floor runs. Bounded: frames
// per run = b.N (use -benchtime 2000000x, at most 20,000,000), no round
// starts after 10 minutes.
func BenchmarkLive(b *testing.B) {
	testkit.RequireRoot(b)
	if !testkit.KernelAtLeast(5, 18) {
		testkit.Skip(b, "live frames need Linux 5.18")
	}
	start := time.Now()
	a, sink := testkit.NewNetNS(b, "la"), testkit.NewNetNS(b, "lb")
	testkit.Veth(b, a, "va", "", sink, "vb", "")
	sink.SetMAC(b, "vb", frameMAC) // frames are for vb's stack (nftables sinks)
	gen := xdpReturn(b, "xdp_tx", 3)
	var va, vb int
	for _, end := range []struct {
		ns    *testkit.NetNS
		name  string
		index *int
	}{{a, "va", &va}, {sink, "vb", &vb}} {
		if err := end.ns.Do(func() error {
			l, err := netlink.LinkByName(end.name)
			if err == nil {
				*end.index = l.Attrs().Index
			}
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
	// transmit sends n frames; it returns the kernel's time for the whole
	// run and the wall-clock time.
	transmit := func(b *testing.B, n int) (kernel, wall time.Duration) {
		err := a.Do(func() (err error) {
			start := time.Now()
			kernel, err = liveRun(gen, hit, &xdpMD{DataEnd: uint32(len(hit)), IngressIfindex: uint32(va)}, uint32(n))
			wall = time.Since(start)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		return kernel, wall
	}
	// attach puts prog on vb. Inside the sink's namespace: an ifindex
	// means the interface of the caller's namespace.
	attach := func(b *testing.B, prog *ebpf.Program) func() {
		var l link.Link
		if err := sink.Do(func() (err error) {
			l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: vb})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		return func() { l.Close() }
	}
	xdpDrops := func() (uint64, error) { return vethXDPDrops(sink, "vb") }
	// An XDP sink: install puts a program on vb; its drops are counted by
	// the veth.
	xdpSink := func(name string, install func(b *testing.B) (remove func())) liveSink {
		return liveSink{name, func(b *testing.B) (func() (uint64, error), func()) {
			return xdpDrops, install(b)
		}}
	}
	attached := func(prog *ebpf.Program) func(b *testing.B) func() {
		return func(b *testing.B) func() { return attach(b, prog) }
	}

	floor := xdpSink("floor-XDP_DROP", attached(xdpReturn(b, "xdp_drop", 1)))
	f, err := xdp.Load(xdp.Options{Rules: xdp.ManyRules(100_000)})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sinks := []liveSink{xdpSink("bpfkit-100000-rules", attached(f.Program()))}
	// The reference sinks: their drops are vb's, checked against their own
	// counters (every frame dropped was parsed, looked up and counted).
	for _, ref := range []struct {
		name string
		key  uint32
	}{{refParseCount, 0}, {refHash100k, refRuleID(hitRule)}} {
		r := newRefSink(b, ref.name)
		sinks = append(sinks, liveSink{ref.name, func(b *testing.B) (func() (uint64, error), func()) {
			remove := attach(b, r.prog)
			read := func() (drops, counted uint64, err error) {
				if drops, err = xdpDrops(); err == nil {
					counted, _, err = r.counted(ref.key)
				}
				return drops, counted, err
			}
			drops0, counted0, err := read()
			if err != nil {
				remove()
				b.Fatal(err)
			}
			return func() (uint64, error) {
				drops, counted, err := read()
				if err == nil && drops-drops0 != counted-counted0 {
					err = fmt.Errorf("%s: vb dropped %d frames, the sink counted %d", ref.name, drops-drops0, counted-counted0)
				}
				return drops, err
			}, remove
		}})
	}
	if _, err := exec.LookPath("xdp-filter"); err != nil {
		b.Run("xdp-filter", func(b *testing.B) { testkit.Skip(b, "xdp-filter is not installed (Debian package xdp-tools)") })
	} else {
		for _, feat := range []string{"udp,ipv4", "all"} {
			sinks = append(sinks, xdpSink("xdp-filter-"+strings.ReplaceAll(feat, ",", "+"), func(b *testing.B) func() {
				_, unload := xdpFilter(b, sink, "vb", feat)
				return unload
			}))
		}
	}
	if _, err := exec.LookPath("nft"); err != nil {
		b.Run("nftables", func(b *testing.B) { testkit.Skip(b, "nft is not installed (Debian package nftables)") })
	} else {
		pass := xdpReturn(b, "xdp_pass", 2) // veth takes XDP_TX'd frames only with a program (or GRO) on the peer
		rule := fmt.Sprintf("ip saddr %s udp dport %d counter name drops drop", hitSrc, 1000+hitRule%1000)
		for _, hook := range []struct{ name, family, chain string }{
			{"ingress", "netdev", `type filter hook ingress device "vb" priority 0;`},
			{"prerouting", "inet", "type filter hook prerouting priority raw;"},
		} {
			sinks = append(sinks, liveSink{"nftables-" + hook.name, func(b *testing.B) (func() (uint64, error), func()) {
				table := fmt.Sprintf("table %s bpfkit_live {\n counter drops {}\n chain c {\n  %s\n  %s\n }\n}\n", hook.family, hook.chain, rule)
				if _, err := inNetNS(sink, table, "nft", "-f", "-"); err != nil {
					b.Fatal(err)
				}
				detach := attach(b, pass)
				return func() (uint64, error) { return nftCounter(sink, hook.family) }, func() {
					detach()
					if _, err := inNetNS(sink, "", "nft", "delete", "table", hook.family, "bpfkit_live"); err != nil {
						b.Error(err)
					}
				}
			}})
		}
	}

	frames := 0 // per run
	// Runs in which not every frame sent reached the sink (the veth's
	// ring overflowed: the receiving NAPI ran late, as under load), per
	// sink, and the least dropped/sent.
	short, minDelivered := map[string]int{}, map[string]float64{}
	// run installs s and measures it in a sub-benchmark; it returns the
	// rates of its last run (the one with the full b.N), per kernel time
	// and per wall-clock time, and false if the sub-benchmark did not run
	// (-bench did not select it).
	run := func(s liveSink) (rate [2]float64, ran bool) {
		drops, remove := s.setup(b)
		defer remove()
		b.Run(s.name, func(b *testing.B) {
			if b.N > maxLiveFrames {
				b.Fatalf("at most %d frames per run", maxLiveFrames)
			}
			count := func() uint64 {
				n, err := drops()
				if err != nil {
					b.Fatal(err)
				}
				return n
			}
			before := count()
			b.ResetTimer() // ns/op: the generator's wall-clock time per frame
			kernel, wall := transmit(b, b.N)
			b.StopTimer()
			time.Sleep(50 * time.Millisecond) // let the receiving side drain its ring
			dropped := float64(count() - before)
			rate = [2]float64{dropped / kernel.Seconds() / 1e6, dropped / wall.Seconds() / 1e6}
			frames, ran = b.N, true
			if delivered := dropped / float64(b.N); delivered < 1 {
				short[s.name]++
				if m, ok := minDelivered[s.name]; !ok || delivered < m {
					minDelivered[s.name] = delivered
				}
			}
			b.ReportMetric(rate[0], "Mpps-dropped")
			b.ReportMetric(rate[1], "wall-Mpps-dropped")
			b.ReportMetric(dropped/float64(b.N), "dropped/sent")
		})
		return rate, ran
	}

	time.Sleep(2 * time.Second) // let the kernel finish freeing what setup dropped
	rates := map[string][][2]float64{}
	ratios := map[string][][2]float64{}
	vsBpfkit := map[string][]float64{} // bpfkit's rate / the sink's, same round
	done := 0
	for range rounds {
		if time.Since(start) > liveBudget {
			b.Logf("time budget %v spent: stopping after %d rounds", liveBudget, done)
			break
		}
		round := map[string]float64{}
		prev, prevOK := run(floor)
		if prevOK {
			rates[floor.name] = append(rates[floor.name], prev)
		}
		for _, s := range sinks {
			r, ok := run(s)
			if !ok {
				continue // not selected: no floor run for it either
			}
			next, nextOK := run(floor)
			if nextOK {
				rates[floor.name] = append(rates[floor.name], next)
			}
			rates[s.name] = append(rates[s.name], r)
			round[s.name] = r[0]
			if prevOK && nextOK {
				ratios[s.name] = append(ratios[s.name], [2]float64{
					r[0] / ((prev[0] + next[0]) / 2),
					r[1] / ((prev[1] + next[1]) / 2),
				})
			}
			prev, prevOK = next, nextOK
		}
		for name, r := range round {
			if k, ok := round[sinks[0].name]; ok && name != sinks[0].name && r > 0 {
				vsBpfkit[name] = append(vsBpfkit[name], k/r)
			}
		}
		done++
	}

	var sum strings.Builder
	fmt.Fprintf(&sum, "%d rounds, %d frames per run; Mpps per kernel time (per wall-clock time in the last two columns); "+
		"ratio = rate / mean of the floor runs just before and after; "+
		"bpfkit/sink = bpfkit's rate / the sink's in the same round\n", done, frames)
	fmt.Fprintf(&sum, "%-20s %8s %8s %8s %12s %8s %8s %12s\n", "sink", "median", "max", "median", "ratio", "wall", "wall", "bpfkit/sink")
	fmt.Fprintf(&sum, "%-20s %8s %8s %8s %12s %8s %8s %12s\n", "", "Mpps", "Mpps", "ratio", "range", "median", "ratio", "median")
	for _, s := range append([]liveSink{floor}, sinks...) {
		rs, qs := rates[s.name], ratios[s.name]
		if len(rs) == 0 {
			continue
		}
		k, w := column(rs, 0), column(rs, 1)
		line := fmt.Sprintf("%-20s %8.2f %8.2f", s.name, median(k), slices.Max(k))
		if len(qs) > 0 {
			kq := column(qs, 0)
			line += fmt.Sprintf(" %8.2f %5.2f-%.2f %8.2f %8.2f", median(kq), slices.Min(kq), slices.Max(kq), median(w), median(column(qs, 1)))
		} else {
			line += fmt.Sprintf(" %8s %12s %8.2f %8s", "", "", median(w), "")
		}
		if vs := vsBpfkit[s.name]; len(vs) > 0 {
			faster := 0
			for _, v := range vs {
				if v > 1 {
					faster++
				}
			}
			line += fmt.Sprintf(" %12.2f (bpfkit faster in %d of %d rounds)", median(vs), faster, len(vs))
		}
		if n := short[s.name]; n > 0 {
			line += fmt.Sprintf("; dropped/sent < 1 in %d of %d runs (min %.3f)", n, len(rs), minDelivered[s.name])
		}
		fmt.Fprintln(&sum, line)
		b.Run("summary/"+s.name, func(b *testing.B) {
			b.ReportMetric(median(k), "median-Mpps")
			b.ReportMetric(median(w), "median-wall-Mpps")
			if len(qs) > 0 {
				b.ReportMetric(median(column(qs, 0)), "median-ratio-to-floor")
				b.ReportMetric(median(column(qs, 1)), "median-wall-ratio-to-floor")
			}
		})
	}
	fmt.Print(sum.String())
}

func column(v [][2]float64, i int) []float64 {
	c := make([]float64, len(v))
	for j := range v {
		c[j] = v[j][i]
	}
	return c
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
