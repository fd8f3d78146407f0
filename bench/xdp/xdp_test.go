// Package xdpbench measures bpfkit's XDP filter per packet with
// BPF_PROG_TEST_RUN against a trivial XDP_DROP (the floor) and xdp-tools'
// xdp-filter. Run as root:
//
//	go test -run '^$' -bench . -benchtime 2000000x ./bench/xdp/
package xdpbench

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"

	"github.com/bpfkit/bpfkit/pkg/loader/testkit"
	"github.com/bpfkit/bpfkit/pkg/xdp"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// udpFrame is Ethernet + IPv4 + UDP with a 18-byte payload (64 bytes).
func udpFrame(src, dst netip.Addr, sport, dport uint16) []byte {
	b := make([]byte, 0, 64)
	b = append(b, 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00)
	b = append(b, 0x45, 0, 0, 50, 0, 1, 0, 0, 64, 17, 0, 0)
	b = append(b, src.AsSlice()...)
	b = append(b, dst.AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = append(b, 0, 30, 0, 0)
	return append(b, make([]byte, 22)...)
}

var (
	// Matches rule 3*256+9 of xdp.ManyRules (src 198.18.3.9, udp dport 1777).
	hit  = udpFrame(netip.MustParseAddr("198.18.3.9"), netip.MustParseAddr("198.19.255.1"), 4000, 1000+(3*256+9)%1000)
	miss = udpFrame(netip.MustParseAddr("198.19.250.9"), netip.MustParseAddr("198.19.255.1"), 4000, 9)
)

func bench(b *testing.B, prog *ebpf.Program, frame []byte) {
	b.Helper()
	ret, _, err := prog.Benchmark(frame, b.N, b.ResetTimer)
	if err != nil {
		b.Fatal(err)
	}
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

// xdpFilter loads xdp-tools' xdp-filter with every feature on a veth in a
// namespace of its own, adds rules, and returns the program on the
// interface (libxdp's dispatcher, which calls xdp-filter: what runs when
// it is deployed).
func xdpFilter(b *testing.B, features string) *ebpf.Program {
	if _, err := exec.LookPath("xdp-filter"); err != nil {
		testkit.Skip(b, "xdp-filter is not installed (Debian package xdp-tools)")
	}
	a, ns := testkit.NewNetNS(b, "ba"), testkit.NewNetNS(b, "bb")
	testkit.Veth(b, a, "va", "", ns, "vb", "")
	run := func(args ...string) {
		b.Helper()
		args = append([]string{"--net=" + ns.Path, "--", "xdp-filter"}, args...)
		if out, err := exec.Command("nsenter", args...).CombinedOutput(); err != nil {
			b.Fatalf("xdp-filter %s: %v: %s", strings.Join(args[3:], " "), err, out)
		}
	}
	run("load", "-f", features, "-p", "allow", "vb")
	b.Cleanup(func() { run("unload", "vb") })
	for i := range 5 {
		run("port", fmt.Sprint(1000+i), "-p", "udp,tcp")
		run("ip", fmt.Sprintf("198.18.0.%d", i+1))
	}
	var prog *ebpf.Program
	if err := ns.Do(func() error {
		l, err := netlink.LinkByName("vb")
		if err != nil {
			return err
		}
		prog, err = ebpf.NewProgramFromID(ebpf.ProgramID(l.Attrs().Xdp.ProgId))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { prog.Close() })
	return prog
}

func bpfkit(b *testing.B, rules int) *ebpf.Program {
	f, err := xdp.Load(xdp.Options{Rules: xdp.ManyRules(rules)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f.Program()
}

// BenchmarkXDP reports ns/op = nanoseconds per packet, for a 64-byte UDP
// frame that a rule matches (hit) and one that none does (miss).
func BenchmarkXDP(b *testing.B) {
	testkit.RequireRoot(b)
	b.Run("floor-XDP_DROP", func(b *testing.B) { bench(b, floor(b), hit) })
	for _, feat := range []string{"udp,ipv4", "all"} {
		b.Run("xdp-filter-"+strings.ReplaceAll(feat, ",", "+"), func(b *testing.B) {
			prog := xdpFilter(b, feat)
			b.Run("miss", func(b *testing.B) { bench(b, prog, miss) })
		})
	}
	for _, n := range []int{10, 10_000, 100_000} {
		b.Run(fmt.Sprintf("bpfkit-%d-rules", n), func(b *testing.B) {
			prog := bpfkit(b, n)
			if n > 3*256+9 {
				b.Run("hit", func(b *testing.B) { bench(b, prog, hit) })
			}
			b.Run("miss", func(b *testing.B) { bench(b, prog, miss) })
		})
	}
}
