package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
)

// TestServeBio: a process in a cgroup of its own does direct reads and
// writes of known sizes on a loop device while `serve --tools bio` runs:
// /metrics shows exactly their bytes for that cgroup, device and
// direction, and latency histograms for that device whose counts are the
// requests the kernel's /sys/block stat counted. A second loop device
// nobody touches has no series.
func TestServeBio(t *testing.T) {
	testkit.RequireRoot(t)
	l := testkit.NewLoop(t, 16<<20)
	idle := testkit.NewLoop(t, 4<<20)
	rel, _ := testCgroup(t, "", fmt.Sprintf("bpfkit-serve-bio-%d", os.Getpid()))
	root, err := loader.Cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	var ops []testkit.IOOp
	var readBytes, writeBytes float64
	for i := range 24 {
		o := testkit.IOOp{Write: i%3 != 0, Offset: int64(i) * 65536, Size: 4096 << (i % 4)}
		if o.Write {
			writeBytes += float64(o.Size)
		} else {
			readBytes += float64(o.Size)
		}
		ops = append(ops, o)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s := startServe(t, addr, "--tools", "bio")
	p := testkit.StartIO(t, "bk-serve-bio", l, root+rel, ops)
	before := l.Stat(t)
	p.Release(t)
	p.Finish(t)
	delta := l.Stat(t).Sub(before)

	disk := fmt.Sprintf("disk=%q", l.Name)
	series := []struct {
		name, op string
		want     float64
	}{
		{"bpfkit_block_io_bytes_total", "read", readBytes},
		{"bpfkit_block_io_bytes_total", "write", writeBytes},
		{"bpfkit_block_io_latency_seconds_count", "read", float64(delta.Reads)},
		{"bpfkit_block_io_latency_seconds_count", "write", float64(delta.Writes)},
	}
	get := func(name, op string) float64 {
		labels := []string{disk, fmt.Sprintf("op=%q", op)}
		if name == "bpfkit_block_io_bytes_total" {
			labels = append(labels, fmt.Sprintf("cgroup=%q", rel))
		}
		return metricWith(t, addr, name, labels...)
	}
	// Scrapes read the kernel's counters: the last completions may take
	// a moment to be counted under emulation.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, m := range series {
			ok = ok && get(m.name, m.op) == m.want
		}
		if ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	skipped := metricWith(t, addr, "bpfkit_tool_skipped_total", `tool="bio"`)
	for _, m := range series {
		got := get(m.name, m.op)
		// Exact, unless the kernel skipped one of the programs (another
		// BPF program ran on that CPU: counted, and what it missed may
		// be missing here).
		if got != m.want && (skipped == 0 || got > m.want) {
			t.Errorf("%s{%s,op=%q} = %v, want %v (kernel-skipped runs: %v); stderr: %s", m.name, disk, m.op, got, m.want, skipped, s.stderr)
		}
	}
	if delta.Reads+delta.Writes != uint64(len(ops)) {
		t.Logf("%s/stat counted %d requests for %d operations (split or merged by the block layer)", l.Name, delta.Reads+delta.Writes, len(ops))
	}
	if sum := metricWith(t, addr, "bpfkit_block_io_latency_seconds_sum", disk, `op="write"`); sum <= 0 {
		t.Errorf("latency sum for %s writes is %v: want the time the requests took", l.Name, sum)
	}
	if n := metricWith(t, addr, "bpfkit_block_io_bytes_total", fmt.Sprintf("disk=%q", idle.Name)); n != 0 {
		t.Errorf("%s, untouched, has %v bytes", idle.Name, n)
	}
	if n := metricWith(t, addr, "bpfkit_block_io_latency_seconds_count", fmt.Sprintf("disk=%q", idle.Name)); n != 0 {
		t.Errorf("%s, untouched, has %v requests", idle.Name, n)
	}
}
