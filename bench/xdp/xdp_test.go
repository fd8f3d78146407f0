// Package xdpbench measures bpfkit's XDP filter per packet with
// BPF_PROG_TEST_RUN against a trivial XDP_DROP (the floor) and xdp-tools'
// xdp-filter. Run as root:
//
//	BENCH_ROUNDS=10 go test -run '^$' -bench . -benchtime 3000000x ./bench/xdp/
package xdpbench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/xdp"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// frameMAC is the destination MAC address of udpFrame (the live benchmark
// gives it to the receiving veth, so that its stack takes the frames).
var frameMAC = net.HardwareAddr{2, 0, 0, 0, 0, 2}

// udpFrame is Ethernet + IPv4 + UDP with a 22-byte payload (64 bytes) and a
// valid IPv4 header checksum (the stack drops frames without one before
// nftables' prerouting hook; UDP's checksum 0 means none).
func udpFrame(src, dst netip.Addr, sport, dport uint16) []byte {
	b := make([]byte, 0, 64)
	b = append(b, frameMAC...)
	b = append(b, 2, 0, 0, 0, 0, 1, 0x08, 0x00)
	b = append(b, 0x45, 0, 0, 50, 0, 1, 0, 0, 64, 17, 0, 0)
	b = append(b, src.AsSlice()...)
	b = append(b, dst.AsSlice()...)
	var sum uint32
	for i := 14; i < 34; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(b[24:], ^uint16(sum))
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = append(b, 0, 30, 0, 0)
	return append(b, make([]byte, 22)...)
}

// hitRule is the rule of xdp.ManyRules that hit matches: src 198.18.7.209/32,
// UDP dport 1001, which is also one of xdpFilter's port rules, so that every
// filter compared drops the same frame by a rule.
const hitRule = 2001

var (
	hitSrc = netip.AddrFrom4([4]byte{198, 18, hitRule >> 8, hitRule & 0xff})
	hit    = udpFrame(hitSrc, netip.MustParseAddr("198.19.255.1"), 4000, 1000+hitRule%1000)
	miss   = udpFrame(netip.MustParseAddr("198.19.250.9"), netip.MustParseAddr("198.19.255.1"), 4000, 9)
)

func bench(b *testing.B, prog *ebpf.Program, frame []byte, want uint32) {
	b.Helper()
	ret, perPacket, err := prog.Benchmark(frame, b.N, b.ResetTimer)
	if err != nil {
		b.Fatal(err)
	}
	if ret != want {
		b.Fatalf("verdict %d, want %d: the program measured does not do what the comparison assumes", ret, want)
	}
	// The kernel's own time per run leaves out the time the thread was
	// scheduled out, which on a shared machine is most of the noise.
	b.ReportMetric(float64(perPacket.Nanoseconds()), "ns/pkt")
	b.ReportMetric(float64(ret), "verdict")
}

func floor(b *testing.B) *ebpf.Program {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "xdp_drop", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { prog.Close() })
	return prog
}

// inNetNS runs a command inside ns (nsenter keeps the test's mounts, so
// /sys/fs/bpf is the same; `ip netns exec` would remount /sys).
func inNetNS(ns *testkit.NetNS, stdin string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command("nsenter", append([]string{"--net=" + ns.Path, "--", name}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// xdpFilter loads xdp-tools' xdp-filter with features and policy allow on
// interface iface in namespace ns, adds rules for UDP/TCP ports 1000-1004 and
// IPv4 addresses 198.18.0.1-5, and returns the program on the interface
// (libxdp's dispatcher, which calls xdp-filter: what runs when it is
// deployed) and a function that unloads it (also run when b ends). One at a
// time: xdp-filter keeps one global state.
func xdpFilter(b *testing.B, ns *testkit.NetNS, iface, features string) (*ebpf.Program, func()) {
	if _, err := exec.LookPath("xdp-filter"); err != nil {
		testkit.Skip(b, "xdp-filter is not installed (Debian package xdp-tools)")
	}
	xf := func(args ...string) error {
		_, err := inNetNS(ns, "", "xdp-filter", args...)
		return err
	}
	must := func(args ...string) {
		b.Helper()
		if err := xf(args...); err != nil {
			b.Fatal(err)
		}
	}
	var prog *ebpf.Program
	loaded := true
	unload := func() {
		if loaded {
			loaded = false
			if prog != nil {
				prog.Close()
			}
			if err := xf("unload", iface); err != nil {
				b.Error(err)
			}
			os.Remove(loader.BPFFSPath + "/xdp") // libxdp's directory, if it is empty
		}
	}
	must("load", "-f", features, "-p", "allow", iface)
	b.Cleanup(unload)
	for i := range 5 {
		must("port", fmt.Sprint(1000+i), "-p", "udp,tcp")
		must("ip", fmt.Sprintf("198.18.0.%d", i+1))
	}
	if err := ns.Do(func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		prog, err = ebpf.NewProgramFromID(ebpf.ProgramID(l.Attrs().Xdp.ProgId))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	return prog, unload
}

func bpfkit(b *testing.B, rules int) *ebpf.Program {
	f, err := xdp.Load(xdp.Options{Rules: xdp.ManyRules(rules)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f.Program()
}

// XDP verdicts (enum xdp_action).
const (
	xdpDrop = 1
	xdpPass = 2
)

// BenchmarkXDP reports ns/pkt (the kernel's BPF_PROG_TEST_RUN time per run)
// for a 64-byte UDP frame that a rule matches (hit: every filter drops it)
// and one that none does (miss: passed); a wrong verdict fails it. Every program is loaded first, then the variants run in turns
// (rounds), so that the work of loading and freeing 100,000-rule maps does
// not land inside another variant's measurement.
func BenchmarkXDP(b *testing.B) {
	testkit.RequireRoot(b)
	type variant struct {
		name  string
		prog  *ebpf.Program
		frame []byte
		want  uint32 // verdict
	}
	var vs []variant
	for _, n := range []int{10, 10_000, 100_000} {
		prog := bpfkit(b, n)
		name := fmt.Sprintf("bpfkit-%d-rules", n)
		if n > hitRule {
			vs = append(vs, variant{name + "/hit", prog, hit, xdpDrop})
		}
		vs = append(vs, variant{name + "/miss", prog, miss, xdpPass})
	}
	vs = append(vs, variant{"floor-XDP_DROP", floor(b), hit, xdpDrop},
		variant{refParseCount, newRefSink(b, refParseCount).prog, hit, xdpDrop})
	ref := newRefSink(b, refHash100k).prog
	vs = append(vs, variant{refHash100k + "/hit", ref, hit, xdpDrop}, variant{refHash100k + "/miss", ref, miss, xdpPass})
	// One phase per xdp-filter feature set, with every other variant
	// measured in turns beside it.
	for _, feat := range []string{"udp,ipv4", "all"} {
		a, ns := testkit.NewNetNS(b, "ba"), testkit.NewNetNS(b, "bb")
		testkit.Veth(b, a, "va", "", ns, "vb", "")
		prog, unload := xdpFilter(b, ns, "vb", feat)
		name := "xdp-filter-" + strings.ReplaceAll(feat, ",", "+")
		phase := append([]variant{{name + "/hit", prog, hit, xdpDrop}, {name + "/miss", prog, miss, xdpPass}}, vs...)
		runtime.GC()
		time.Sleep(2 * time.Second) // let the kernel finish freeing what setup dropped
		for range rounds {
			for _, v := range phase {
				b.Run(v.name, func(b *testing.B) { bench(b, v.prog, v.frame, v.want) })
			}
		}
		unload()
	}
}

// rounds is how many turns each variant gets ($BENCH_ROUNDS, default 5).
var rounds = func() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 5
}()
