package xdpbench

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/xdp"
)

// The reference sinks are the least a filter can do, written in BPF
// assembly: they bound from below what any filter that parses the frame and
// counts it (ref-parse-count), and any that also looks its source address up
// among 100,000 rules and counts per rule (ref-hash-100k), costs.
const (
	refParseCount = "ref-parse-count"
	refHash100k   = "ref-hash-100k"
	// refRules is how many /32 sources ref-hash-100k holds.
	refRules = 100_000
	// refStatsEntries is the size of ref-hash-100k's per-rule counters,
	// like bpfkit's rule_stats.
	refStatsEntries = 131072
	// refPrefixTag is the first half of ref-hash-100k's keys, like the
	// generation and prefix length of bpfkit's per-length hash.
	refPrefixTag = 32
)

// refKey is a key of ref-hash-100k's hash: a tag and an IPv4 address in
// network order (struct xdpf_pfx4_key's layout).
type refKey struct {
	Tag  uint32
	Addr [4]byte
}

// refCounter is a per-CPU counter of a reference sink (struct
// xdpf_counter's layout).
type refCounter struct{ Packets, Bytes uint64 }

// refSink is a loaded reference program with its counters.
type refSink struct {
	prog  *ebpf.Program
	stats *ebpf.Map
}

// counted returns the packets and bytes counted under key, summed over
// the CPUs.
func (r *refSink) counted(key uint32) (packets, bytes uint64, err error) {
	var per []refCounter
	if err := r.stats.Lookup(key, &per); err != nil {
		return 0, 0, fmt.Errorf("reading the reference sink's counters: %w", err)
	}
	for _, c := range per {
		packets += c.Packets
		bytes += c.Bytes
	}
	return packets, bytes, nil
}

// refRuleID is the rule id, and counter index, of ManyRules' rule i in
// ref-hash-100k (ids start at 1, like bpfkit's).
func refRuleID(i int) uint32 { return uint32(i + 1) }

// refParse is the common head of the reference programs: it checks that the
// frame is Ethernet + IPv4 (version 4, IHL at least 5) + UDP with its ports
// in the frame, and goes to label "pass" (R0 = XDP_PASS) otherwise. After
// it: R6 = data, R7 = the UDP destination port (network order), R8 = the
// frame's length.
func refParse() asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R0, 2),                   // XDP_PASS
		asm.LoadMem(asm.R6, asm.R1, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R8, asm.R3),
		asm.Sub.Reg(asm.R8, asm.R6), // bytes
		asm.Mov.Reg(asm.R4, asm.R6),
		asm.Add.Imm(asm.R4, 14+20), // Ethernet + the smallest IPv4 header
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R6, 12, asm.Half), // ethertype, network order
		asm.JNE.Imm(asm.R5, 0x0008, "pass"),       // ETH_P_IP read little-endian
		asm.LoadMem(asm.R5, asm.R6, 14, asm.Byte), // version, IHL
		asm.Mov.Reg(asm.R4, asm.R5),
		asm.RSh.Imm(asm.R4, 4),
		asm.JNE.Imm(asm.R4, 4, "pass"),
		asm.And.Imm(asm.R5, 0xf),
		asm.JLT.Imm(asm.R5, 5, "pass"),
		asm.LoadMem(asm.R4, asm.R6, 14+9, asm.Byte), // protocol
		asm.JNE.Imm(asm.R4, unix.IPPROTO_UDP, "pass"),
		asm.LSh.Imm(asm.R5, 2), // IPv4 header length: 20-60
		asm.Mov.Reg(asm.R4, asm.R6),
		asm.Add.Imm(asm.R4, 14),
		asm.Add.Reg(asm.R4, asm.R5), // UDP header
		asm.Mov.Reg(asm.R5, asm.R4),
		asm.Add.Imm(asm.R5, 4), // source and destination ports
		asm.JGT.Reg(asm.R5, asm.R3, "pass"),
		asm.LoadMem(asm.R7, asm.R4, 2, asm.Half), // destination port
	}
}

// refCount adds one packet of R8 bytes to the per-CPU counter of stats
// whose key is at R10+off, and returns verdict; "pass" if there is no such
// counter (so that every frame dropped is counted).
func refCount(stats *ebpf.Map, off int16, verdict int32) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, stats.FD()),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, int32(off)),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, 8, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R8),
		asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, verdict),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 2).WithSymbol("pass"),
		asm.Return(),
	}
}

// newRefSink loads reference sink name: ref-parse-count parses the frame
// (refParse), counts it in a per-CPU counter and drops it; ref-hash-100k
// parses it, looks its source address up in a hash of ManyRules(100,000)'s
// /32 sources (no preallocation, like bpfkit's per-length hashes), and for
// a hit counts it in the rule's per-CPU counter (of 131,072, like bpfkit's
// rule_stats) and drops it; it passes everything else.
func newRefSink(tb testing.TB, name string) *refSink {
	tb.Helper()
	if err := loader.Preflight(); err != nil { // also lifts the memlock limit of kernels before 5.11
		tb.Fatal(err)
	}
	newMap := func(spec *ebpf.MapSpec) *ebpf.Map {
		m, err := ebpf.NewMap(spec)
		if err != nil {
			tb.Fatalf("%s: %v", spec.Name, err)
		}
		tb.Cleanup(func() { m.Close() })
		return m
	}
	stats := &ebpf.MapSpec{Name: "ref_stats", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: 1}
	insns := refParse()
	switch name {
	case refParseCount:
		r := &refSink{stats: newMap(stats)}
		insns = append(insns, asm.StoreImm(asm.R10, -4, 0, asm.Word))
		r.prog = newRefProgram(tb, "ref_parse_count", append(insns, refCount(r.stats, -4, 1)...))
		return r
	case refHash100k:
		stats.MaxEntries = refStatsEntries
		r := &refSink{stats: newMap(stats)}
		srcs := newMap(&ebpf.MapSpec{Name: "ref_srcs", Type: ebpf.Hash, KeySize: 8, ValueSize: 4,
			MaxEntries: refRules, Flags: unix.BPF_F_NO_PREALLOC})
		keys, ids := make([]refKey, refRules), make([]uint32, refRules)
		for i, rule := range xdp.ManyRules(refRules) {
			keys[i], ids[i] = refKey{refPrefixTag, rule.Src.Addr().As4()}, refRuleID(i)
		}
		if n, err := srcs.BatchUpdate(keys, ids, nil); err != nil || n != refRules {
			tb.Fatalf("filling ref_srcs: %d of %d entries: %v", n, refRules, err)
		}
		insns = append(insns,
			asm.StoreImm(asm.R10, -8, refPrefixTag, asm.Word),
			asm.LoadMem(asm.R1, asm.R6, 14+12, asm.Word), // source address
			asm.StoreMem(asm.R10, -4, asm.R1, asm.Word),
			asm.LoadMapPtr(asm.R1, srcs.FD()),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -8),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "pass"),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.Word), // rule id
			asm.StoreMem(asm.R10, -12, asm.R1, asm.Word),
		)
		r.prog = newRefProgram(tb, "ref_hash_100k", append(insns, refCount(r.stats, -12, 1)...))
		return r
	}
	tb.Fatalf("no reference sink %q", name)
	return nil
}

func newRefProgram(tb testing.TB, name string, insns asm.Instructions) *ebpf.Program {
	tb.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.XDP, License: "GPL", Instructions: insns})
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	tb.Cleanup(func() { prog.Close() })
	return prog
}

// TestRef checks the reference sinks' verdicts and counts: every hit frame
// is dropped and counted (under the hit rule's id for ref-hash-100k), a
// frame of no rule is passed by ref-hash-100k and counted nowhere, a
// non-IPv4 frame is passed by both.
func TestRef(t *testing.T) {
	testkit.RequireRoot(t)
	const runs = 1000
	arp := append(append([]byte{}, hit[:12]...), 0x08, 0x06)
	arp = append(arp, make([]byte, 50)...)
	for _, c := range []struct {
		name   string
		frame  []byte
		action uint32
		key    uint32 // counter that counts it
		counts bool
	}{
		{refParseCount, hit, 1, 0, true},
		{refParseCount, miss, 1, 0, true},
		{refParseCount, arp, 2, 0, false},
		{refHash100k, hit, 1, refRuleID(hitRule), true},
		{refHash100k, miss, 2, refRuleID(hitRule), false},
		{refHash100k, arp, 2, refRuleID(hitRule), false},
	} {
		r := newRefSink(t, c.name)
		ret, err := r.prog.Run(&ebpf.RunOptions{Data: c.frame, Repeat: runs})
		if err != nil {
			t.Fatal(err)
		}
		if ret != c.action {
			t.Errorf("%s, frame %x: verdict %d, want %d", c.name, c.frame[:34], ret, c.action)
		}
		want := [2]uint64{}
		if c.counts {
			want = [2]uint64{runs, runs * uint64(len(c.frame))}
		}
		packets, bytes, err := r.counted(c.key)
		if err != nil {
			t.Fatal(err)
		}
		if got := [2]uint64{packets, bytes}; got != want {
			t.Errorf("%s, frame %x: counted %d packets and bytes, want %d", c.name, c.frame[:34], got, want)
		}
	}
}
