package softirqs

import (
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

type snapshot struct {
	at    time.Time
	stats map[[2]int]Stat
}

func snap(t *testing.T, tr *Tracer) snapshot {
	t.Helper()
	s, err := tr.Totals()
	if err != nil {
		t.Fatal(err)
	}
	m := map[[2]int]Stat{}
	for _, st := range s {
		m[[2]int{st.CPU, st.Vector}] = st
	}
	return snapshot{time.Now(), m}
}

func proc(t *testing.T) [][]uint64 {
	t.Helper()
	_, counts, err := ReadProc()
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

// netRXWork makes NET_RX work: 200 datagrams over ns's loopback.
func netRXWork(t *testing.T, ns *testkit.NetNS) {
	t.Helper()
	if err := ns.Do(func() error {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer c.Close()
		for range 200 {
			if _, err := c.WriteTo([]byte("softirqs"), c.LocalAddr()); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestNoHistograms: a tracer without histograms (bpfkit softirqs without
// -d) counts the same runs as one with them, bracketed as in TestCounts
// (its reads P0 < H1 < P1 and P2 < H2 < P3 around the other's), measures
// their time, and leaves every histogram empty.
func TestNoHistograms(t *testing.T) {
	testkit.RequireRoot(t)
	hist, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer hist.Close()
	plain, err := New(Config{NoHistograms: true})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ns := testkit.NewNetNS(t, "softirqsnh")

	p0, h1, p1 := snap(t, plain), snap(t, hist), snap(t, plain)
	netRXWork(t, ns)
	time.Sleep(50 * time.Millisecond)
	p2, h2, p3 := snap(t, plain), snap(t, hist), snap(t, plain)

	var netRX uint64
	var netRXTime time.Duration
	for k, h := range h2.stats {
		got := h.Count - h1.stats[k].Count
		low, high := p2.stats[k].Count-p1.stats[k].Count, p3.stats[k].Count-p0.stats[k].Count
		if got < low || got > high {
			t.Errorf("cpu %d %s: counted %d with histograms, %d..%d without", k[0], h.Name, got, low, high)
		}
		if h.Name == "NET_RX" {
			netRX += low
			netRXTime += p2.stats[k].Time - p1.stats[k].Time
		}
	}
	for k, p := range p3.stats {
		if p.Hist != ([Slots]uint64{}) {
			t.Errorf("cpu %d %s: histogram %v without histograms", k[0], p.Name, p.Hist)
		}
	}
	if netRX == 0 || netRXTime <= 0 {
		t.Errorf("without histograms: %d NET_RX runs in %s during 200 datagrams", netRX, netRXTime)
	}
}

// TestCounts: over a window with NET_RX traffic, every CPU's count of
// every vector in /proc/softirqs moves by exactly as much as softirqs
// counted, bracketed: the kernel counts /proc/softirqs just before
// softirq_entry, so with reads M0 < A1 < M1 and M2 < A2 < M3 (the tracer's
// totals M, /proc's A, 2 ms apart), A2-A1 lies in [M2-M1, M3-M0] whatever
// fires during the reads. Each CPU's time in softirqs between M1 and M2 is
// at most the wall time from M0 to M3 plus the one run that may have begun
// before M0 (runs on a CPU do not overlap), bounded by its histogram
// bucket.
func TestCounts(t *testing.T) {
	testkit.RequireRoot(t)
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ns := testkit.NewNetNS(t, "softirqs")

	m0 := snap(t, tr)
	time.Sleep(2 * time.Millisecond)
	a1 := proc(t)
	time.Sleep(2 * time.Millisecond)
	m1 := snap(t, tr)
	netRXWork(t, ns)
	time.Sleep(50 * time.Millisecond)
	m2 := snap(t, tr)
	time.Sleep(2 * time.Millisecond)
	a2 := proc(t)
	time.Sleep(2 * time.Millisecond)
	m3 := snap(t, tr)

	netRX := uint64(0)
	for vec, perCPU := range a2 {
		for cpu := range perCPU {
			k := [2]int{cpu, vec}
			proc := a2[vec][cpu] - a1[vec][cpu]
			low := m2.stats[k].Count - m1.stats[k].Count
			high := m3.stats[k].Count - m0.stats[k].Count
			if proc < low || proc > high {
				t.Errorf("cpu %d %s: /proc/softirqs rose by %d, softirqs counted %d..%d (missed runs: %d)",
					cpu, tr.names[vec], proc, low, high, tr.Health().Missed)
			}
			if tr.names[vec] == "NET_RX" {
				netRX += low
			}
		}
	}
	if netRX == 0 {
		t.Errorf("no NET_RX softirq counted during 200 datagrams")
	}
	wall := m3.at.Sub(m0.at)
	cpus := map[int]time.Duration{}
	longest := map[int]time.Duration{}
	for k, s := range m2.stats {
		d := s.Time - m1.stats[k].Time
		cpus[k[0]] += d
		for i := Slots - 1; i >= 0; i-- {
			if s.Hist[i] > m1.stats[k].Hist[i] {
				// bucket i holds runs of 2^i to 2^(i+1)-1 µs
				longest[k[0]] = max(longest[k[0]], time.Duration(uint64(1)<<(i+1))*time.Microsecond)
				break
			}
		}
	}
	for cpu, d := range cpus {
		if d > wall+longest[cpu] {
			t.Errorf("cpu %d spent %v in softirqs in a %v window (longest run under %v)", cpu, d, wall, longest[cpu])
		}
	}
}

// burner is an XDP program of n additions, then XDP_PASS: on a
// namespace's loopback (generic XDP) it makes each received packet's
// NET_RX run long, next to the send that raised it.
func burner(t *testing.T, n int) *ebpf.Program {
	t.Helper()
	insns := asm.Instructions{asm.Mov.Imm(asm.R0, 0)}
	for range n {
		insns = append(insns, asm.Add.Imm(asm.R0, 1))
	}
	insns = append(insns, asm.Mov.Imm(asm.R0, 2), asm.Return())
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "burner", Type: ebpf.XDP, License: "GPL", Instructions: insns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// monotonic is CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
func monotonic() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // cannot fail with a valid clock and pointer
	return time.Duration(ts.Nano())
}

// TestTime checks the time softirqs measures, with ns histograms and
// with µs ones (the default: the total is in ns either way), on one CPU
// from a thread pinned to it. A softirq run is never preempted by a task,
// so while the thread runs no run is under way on its CPU, and between two
// of its reads, exactly:
//   - every vector's runs begun equal the runs added to its histogram (the
//     totals may differ: a run that began between the attaching of the
//     entry and of the exit program is counted, never timed);
//   - its time lies within the histogram's bounds: a run in slot i lasted
//     2^i to 2^(i+1)-1 units (slot 0: 0 or 1 unit, so from 0 ns; the
//     last slot has no upper bound), i.e. from 2^i u to 2^(i+1) u - 1 ns
//     for a unit of u ns, so the sum of the lower bounds <= time <= that
//     of the upper (a total kept in the histogram's unit, not in ns, is
//     below the lower bound once a run lasted 2 units);
//   - every run counted lies wholly between a clock read before the first
//     read and one after the second, and runs on a CPU do not overlap: the
//     time of all vectors is at most that wall time.
//
// The datagrams the thread sends over the namespace's loopback are
// received on its CPU, in a NET_RX run when the send turns bottom halves
// back on, and a generic XDP program of 100,000 additions makes each run
// long (~30 µs on the host); with the thread SCHED_FIFO no other task
// stretches the window, so these runs fill most of it (70-90% on the host
// and in the 5.10-7.2 VMs): time counted twice, or from an earlier timestamp than
// the run's entry, exceeds it.
//
// The kernel's own softirq time (/proc/stat) is no reference here: without
// CONFIG_IRQ_TIME_ACCOUNTING (unset on the host and on every kernel of the
// matrix) it is sampled at the tick, not measured.
func TestTime(t *testing.T) {
	testkit.RequireRoot(t)
	t.Run("ns", func(t *testing.T) { timeRuns(t, Config{Nanoseconds: true}, time.Nanosecond) })
	t.Run("us", func(t *testing.T) { timeRuns(t, Config{}, time.Microsecond) })
}

// timeRuns is TestTime with a tracer of cfg, whose histograms are in unit.
func timeRuns(t *testing.T, cfg Config, unit time.Duration) {
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ns := testkit.NewNetNS(t, "softirqs-time")
	loXDP(t, ns, burner(t, 100_000))
	const cpu, n = 0, 100
	read := func() (map[int]Stat, error) { return cpuTotals(tr, cpu) }
	var s0, s1 map[int]Stat
	var wall time.Duration
	if err := ns.Do(func() error {
		return pinned(cpu, func() error {
			c, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			defer c.Close()
			t0 := monotonic()
			if s0, err = read(); err != nil {
				return err
			}
			for range n {
				if _, err := c.WriteTo([]byte("softirqs"), c.LocalAddr()); err != nil {
					return err
				}
			}
			if s1, err = read(); err != nil {
				return err
			}
			wall = monotonic() - t0
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}

	missed := tr.Health().Missed
	var sum time.Duration
	for vec, st := range s1 {
		d := st // the runs between the reads
		d.Count -= s0[vec].Count
		d.Time -= s0[vec].Time
		for i := range d.Hist {
			d.Hist[i] -= s0[vec].Hist[i]
		}
		sum += d.Time
		var runs uint64
		var low, high time.Duration
		for i, h := range d.Hist {
			runs += h
			if i > 0 { // slot 0 starts at 0
				low += time.Duration(h) * time.Duration(uint64(1)<<i) * unit
			}
			if i == Slots-1 && h > 0 {
				high = math.MaxInt64
			} else if high != math.MaxInt64 {
				high += time.Duration(h) * (time.Duration(uint64(1)<<(i+1))*unit - 1)
			}
		}
		if runs != d.Count {
			t.Errorf("CPU %d %s between two reads from that CPU: %d runs begun, %d in the histogram (missed runs: %d)",
				cpu, st.Name, d.Count, runs, missed)
		}
		if d.Time < low || d.Time > high {
			t.Errorf("CPU %d %s between two reads: time %v, its histogram %v says %v to %v", cpu, st.Name, d.Time, d.Hist, low, high)
		}
	}
	netRX := tr.vector(t, "NET_RX")
	if s1[netRX].Count-s0[netRX].Count == 0 {
		t.Fatalf("no NET_RX run on CPU %d during %d datagrams over loopback sent from it", cpu, n)
	}
	t.Logf("CPU %d: %v in softirqs (NET_RX %v) in a window of %v", cpu, sum, s1[netRX].Time-s0[netRX].Time, wall)
	if sum > wall {
		t.Errorf("CPU %d spent %v in softirqs between two reads %v apart, made from that CPU", cpu, sum, wall)
	}
}

// loXDP attaches prog to ns's loopback as generic XDP: it runs in the
// NET_RX run that receives each packet sent over it.
func loXDP(t *testing.T, ns *testkit.NetNS, prog *ebpf.Program) {
	t.Helper()
	lo := ns.Index(t, "lo")
	if err := ns.Do(func() error {
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: lo, Flags: link.XDPGenericMode})
		if err == nil {
			t.Cleanup(func() { l.Close() })
		}
		return err
	}); err != nil {
		t.Fatalf("generic XDP on the namespace's lo: %v", err)
	}
}

// cpuTotals reads tr's totals of cpu until two reads in a row agree (a
// run may interrupt the copy of the thread's own CPU), at most 10.
func cpuTotals(tr *Tracer, cpu int) (map[int]Stat, error) {
	var prev map[int]Stat
	for range 10 {
		all, err := tr.Totals()
		if err != nil {
			return nil, err
		}
		m := map[int]Stat{}
		for _, s := range all {
			if s.CPU == cpu {
				m[s.Vector] = s
			}
		}
		if maps.Equal(m, prev) {
			return m, nil
		}
		prev = m
	}
	return nil, fmt.Errorf("CPU %d's softirq totals changed in each of 10 reads from that CPU", cpu)
}

// pinned runs fn on the calling thread pinned to cpu and SCHED_FIFO, so
// that other tasks on that CPU do not stretch its window; both undone
// before the thread goes back to the Go scheduler (the caller's thread is
// locked: ns.Do).
func pinned(cpu int, fn func() error) (err error) {
	var all, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		return err
	}
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return err
	}
	defer unix.SchedSetaffinity(0, &all)
	if err := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 1}, 0); err != nil {
		return fmt.Errorf("SCHED_FIFO: %w", err)
	}
	defer func() {
		if rerr := unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_NORMAL}, 0); rerr != nil && err == nil {
			err = rerr
		}
	}()
	return fn()
}

// vector is the number of the vector /proc/softirqs calls name.
func (tr *Tracer) vector(t *testing.T, name string) int {
	t.Helper()
	i := slices.Index(tr.names, name)
	if i < 0 {
		t.Fatalf("no %s in /proc/softirqs' vectors %v", name, tr.names)
	}
	return i
}

// TestInRun: a run is counted when it begins, as /proc/softirqs counts it
// (just before softirq_entry), and timed when it ends. So inside a NET_RX
// run, the count of its CPU's NET_RX runs is one more than the runs in its
// histogram, plus d0, that difference read from that CPU between runs
// (runs counted but never timed: begun before the exit program attached).
// Any other run between the read and the probed one adds one to both.
//
// The probe is a generic XDP program on a namespace's loopback, in the
// NET_RX run that receives the one datagram a thread pinned to the CPU
// sends (loopback queues it to the sender's CPU): it reads the tracer's
// stats of NET_RX on its CPU and stores count - Σhist.
func TestInRun(t *testing.T) {
	testkit.RequireRoot(t)
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	netRX := tr.vector(t, "NET_RX")
	seen, err := ebpf.NewMap(&ebpf.MapSpec{Name: "in_run", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer seen.Close()
	const none = math.MaxUint64 // no probe ran
	if err := seen.Put(uint32(0), uint64(none)); err != nil {
		t.Fatal(err)
	}
	insns := asm.Instructions{
		asm.StoreImm(asm.RFP, -4, int64(netRX), asm.Word),
		asm.LoadMapPtr(asm.R1, tr.maps.Stats.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R3, asm.R0, 0, asm.DWord), // count
	}
	for i := range Slots { // hist follows count and ns
		insns = append(insns, asm.LoadMem(asm.R4, asm.R0, int16(16+8*i), asm.DWord), asm.Sub.Reg(asm.R3, asm.R4))
	}
	insns = append(insns,
		asm.StoreMem(asm.RFP, -16, asm.R3, asm.DWord),
		asm.StoreImm(asm.RFP, -20, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, seen.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -20),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -16),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnMapUpdateElem.Call(),
		asm.Mov.Imm(asm.R0, 2).WithSymbol("out"), // XDP_PASS
		asm.Return(),
	)
	probe, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "in_run", Type: ebpf.XDP, License: "GPL", Instructions: insns})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	ns := testkit.NewNetNS(t, "softirqs-inrun")
	loXDP(t, ns, probe)

	const cpu = 0
	var s0 map[int]Stat
	if err := ns.Do(func() error {
		return pinned(cpu, func() error {
			c, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			defer c.Close()
			if s0, err = cpuTotals(tr, cpu); err != nil {
				return err
			}
			_, err = c.WriteTo([]byte("softirqs"), c.LocalAddr())
			return err
		})
	}); err != nil {
		t.Fatal(err)
	}
	var got uint64
	if err := seen.Lookup(uint32(0), &got); err != nil {
		t.Fatal(err)
	}
	if got == none {
		t.Fatalf("the probe on lo never ran: no NET_RX run received the datagram")
	}
	var timed uint64
	for _, h := range s0[netRX].Hist {
		timed += h
	}
	d0 := s0[netRX].Count - timed
	if got != d0+1 {
		t.Errorf("inside a NET_RX run on CPU %d: runs counted - runs timed = %d, want %d (%d before it, read between runs, plus the run under way) (missed runs: %d)",
			cpu, int64(got), d0+1, d0, tr.Health().Missed)
	}
}
