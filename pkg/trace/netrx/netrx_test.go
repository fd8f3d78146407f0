package netrx

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// inNetnsSysfs writes value to path (relative to /sys) as seen from ns:
// sysfs shows a namespace's interfaces only in a sysfs mounted from it, so
// this mounts one in a private mount namespace, on a thread that is never
// given back to the Go scheduler (it dies with its namespaces).
func inNetnsSysfs(t *testing.T, ns *testkit.NetNS, path, value string) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("unshare mount namespace: %w", err)
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return fmt.Errorf("make mounts private: %w", err)
			}
			fd, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("enter %s: %w", ns.Name, err)
			}
			dir, err := os.MkdirTemp("", "bpfkit-sysfs-")
			if err != nil {
				return err
			}
			defer os.Remove(dir)
			if err := unix.Mount("sysfs", dir, "sysfs", 0, ""); err != nil {
				return fmt.Errorf("mount sysfs: %w", err)
			}
			defer unix.Unmount(dir, unix.MNT_DETACH)
			return os.WriteFile(filepath.Join(dir, path), []byte(value), 0)
		}()
	}()
	if err := <-errc; err != nil {
		t.Fatalf("write %s in %s: %v", path, ns.Name, err)
	}
}

// vbCounts adds up, per CPU and in all, what tr counts on vb in namespace
// netns from now until enough says all is there (5 s at most: softirqs
// process the packets after the sends return), and 200 ms more for any
// extra. queues is the packets counted per RX queue.
func vbCounts(t *testing.T, tr *Tracer, netns uint32, enough func(total Count) bool) (per map[uint32]Count, total Count, queues map[int32]uint64) {
	t.Helper()
	per, queues = map[uint32]Count{}, map[int32]uint64{}
	var all time.Time // when enough was counted
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		d, err := tr.Delta()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range d {
			if c.Netns == netns && c.Iface == "vb" {
				p := per[c.CPU]
				for _, sum := range []*Count{&total, &p} {
					sum.Packets += c.Packets
					sum.Bytes += c.Bytes
					sum.Polls += c.Polls
					sum.Full += c.Full
				}
				per[c.CPU] = p
				if c.Packets != 0 {
					queues[c.Queue] += c.Packets
				}
			}
		}
		if all.IsZero() && enough(total) {
			all = time.Now()
		}
		if !all.IsZero() && time.Since(all) > 200*time.Millisecond || time.Now().After(deadline) {
			return per, total, queues
		}
	}
}

// TestRPS: with rps_cpus of vb's RX queue set to one CPU, every datagram
// a sends is received by the stack on that CPU, whichever CPU sent it:
// exactly n packets of exactly n*(IP+UDP header+payload) bytes on vb on
// that CPU, none on another. Then the same with the other CPU.
//
// All of them with no RX queue recorded (NoQueue): vb has no XDP program
// and no GRO, so veth_xmit hands them to netif_rx without its NAPI, the
// only path where veth records an RX queue (skb_record_rx_queue); the
// skb's queue_mapping is still va's TX queue 0, which reads as none
// recorded (skb_rx_queue_recorded). RPS itself then uses rx-0's map, the
// one the test sets.
func TestRPS(t *testing.T) {
	testkit.RequireRoot(t)
	cpus := runtime.NumCPU()
	if cpus < 2 {
		testkit.Skip(t, "needs 2 CPUs, has %d", cpus)
	}
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	a, b := testkit.QuietPair(t, "netrx", "198.18.14")
	bNetns := b.Inode(t)

	const n, payload = 100, 100
	for _, cpu := range []int{0, 1} {
		inNetnsSysfs(t, b, "class/net/vb/queues/rx-0/rps_cpus", strconv.FormatUint(1<<cpu, 16))
		if _, err := tr.Delta(); err != nil { // the baseline
			t.Fatal(err)
		}
		if err := a.Do(func() error {
			c, err := net.ListenPacket("udp", "198.18.14.1:0")
			if err != nil {
				return err
			}
			defer c.Close()
			to := &net.UDPAddr{IP: net.ParseIP("198.18.14.2"), Port: 9}
			for range n {
				if _, err := c.WriteTo(make([]byte, payload), to); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		per, _, queues := vbCounts(t, tr, bNetns, func(total Count) bool { return total.Packets >= n })
		if len(queues) != 1 || queues[NoQueue] != n {
			t.Errorf("rps_cpus=CPU %d: packets per RX queue on vb %v, want all %d on queue %d (none recorded)", cpu, queues, n, NoQueue)
		}
		for c, got := range per {
			want := Count{}
			if int(c) == cpu {
				want = Count{Packets: n, Bytes: n * (20 + 8 + payload)}
			}
			if got.Packets != want.Packets || got.Bytes != want.Bytes {
				t.Errorf("rps_cpus=CPU %d: CPU %d received %d packets, %d bytes on vb; want %d, %d",
					cpu, c, got.Packets, got.Bytes, want.Packets, want.Bytes)
			}
		}
		if per[uint32(cpu)].Packets != n {
			t.Errorf("rps_cpus=CPU %d: it received %d packets on vb, want %d (all: %+v)", cpu, per[uint32(cpu)].Packets, n, per)
		}
	}
}

// vethWeight is the budget of a veth's NAPI poll: NAPI_POLL_WEIGHT, what
// veth gives netif_napi_add on every kernel of the matrix (5.10-7.x).
const vethWeight = 64

// burster is a tc program for a sender's egress: a packet without mark
// burstMark is dropped after k clones of it, marked, are sent through the
// same interface (bpf_clone_redirect, ifindex); a marked one goes out. The
// clones are sent inside the original's dev_queue_xmit, with bottom halves
// off: all k are in the receiving veth's ring before its NAPI is first
// polled, whatever the CPU and the kernel.
func burster(t *testing.T, ifindex, k int) *ebpf.Program {
	t.Helper()
	const burstMark = 0x62706b // "bpk"
	markOff := int16(8)        // struct __sk_buff: len, pkt_type, mark
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R0, asm.R6, markOff, asm.Word),
		asm.JEq.Imm(asm.R0, burstMark, "out"),
		asm.Mov.Imm(asm.R1, burstMark),
		asm.StoreMem(asm.R6, markOff, asm.R1, asm.Word),
	}
	for range k {
		insns = append(insns,
			asm.Mov.Reg(asm.R1, asm.R6),
			asm.Mov.Imm(asm.R2, int32(ifindex)),
			asm.Mov.Imm(asm.R3, 0), // egress
			asm.FnCloneRedirect.Call())
	}
	insns = append(insns,
		asm.Mov.Imm(asm.R0, 2), // TC_ACT_SHOT: the original
		asm.Return(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"), // TC_ACT_OK: a clone
		asm.Return())
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "burster", Type: ebpf.SchedCLS, License: "GPL", Instructions: insns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// TestNAPIPolls: a burst of k packets lands whole in the ring of a veth
// that polls with NAPI (an XDP program is attached: every kernel since
// 4.19), so its polls are known exactly: each takes min(ring, 64), and a
// poll that used its whole budget is polled again, finding the rest or
// nothing (the driver did not complete it). So k packets give k/64+1
// polls, k/64 of them full. The kernel's own count of what the polls took,
// the veth's rx_queue_0_xdp_packets (each poll adds its work), must rise by
// exactly k, and the stack must receive exactly k packets on vb.
//
// /proc/net/softnet_stat's time_squeeze is not compared: it counts
// net_rx_action runs cut short by netdev_budget (300, machine-wide) or
// netdev_budget_usecs, not polls that used their NAPI's weight; here vb is
// polled once per net_rx_action (a full poll is polled again in the next
// run), so the budget never runs out and a squeeze comes only from the
// time limit, which is not known in advance.
func TestNAPIPolls(t *testing.T) {
	testkit.RequireRoot(t)
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	a, b := testkit.QuietPair(t, "napi", "198.18.16") // nothing but the bursts reaches vb
	bNetns := b.Inode(t)
	pass, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "xdp_pass", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer pass.Close()
	vb := b.Index(t, "vb")
	if err := b.Do(func() error {
		l, err := link.AttachXDP(link.XDPOptions{Program: pass, Interface: vb})
		if err == nil {
			t.Cleanup(func() { l.Close() })
		}
		return err
	}); err != nil {
		t.Fatalf("XDP on vb: %v", err)
	}
	xdpPackets := func() uint64 {
		var stats map[string]uint64
		if err := b.Do(func() (err error) {
			stats, err = testkit.EthtoolStats("vb")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		n, ok := stats["rx_queue_0_xdp_packets"]
		if !ok {
			t.Fatalf("vb has no rx_queue_0_xdp_packets in its ethtool statistics: %v", stats)
		}
		return n
	}

	const payload = 100
	va := a.Index(t, "va")
	// Each burst is at most 200: the veth's ring holds 256.
	for _, k := range []int{200, 64, 30} {
		wantPolls, wantFull := uint64(k/vethWeight+1), uint64(k/vethWeight)
		a.TCEgress(t, "va", burster(t, va, k))
		if _, err := tr.Delta(); err != nil { // the baseline
			t.Fatal(err)
		}
		before := xdpPackets()
		if err := a.Do(func() error {
			c, err := net.ListenPacket("udp", "198.18.16.1:0")
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.WriteTo(make([]byte, payload), &net.UDPAddr{IP: net.ParseIP("198.18.16.2"), Port: 9})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// The polls run when the send turns bottom halves back on, or in
		// ksoftirqd.
		_, got, _ := vbCounts(t, tr, bNetns, func(total Count) bool {
			return total.Polls >= wantPolls && total.Packets >= uint64(k)
		})
		if work := xdpPackets() - before; work != uint64(k) {
			t.Fatalf("burst of %d: vb's polls took %d packets (rx_queue_0_xdp_packets), want %d", k, work, k)
		}
		if got.Polls != wantPolls || got.Full != wantFull || got.Packets != uint64(k) || got.Bytes != uint64(k*(20+8+payload)) {
			t.Errorf("burst of %d: vb had %d polls, %d full, %d packets, %d bytes; want %d, %d, %d, %d (missed runs: %d)",
				k, got.Polls, got.Full, got.Packets, got.Bytes, wantPolls, wantFull, k, k*(20+8+payload), tr.Health().Missed)
		}
	}
}
