package cswitch

import (
	"runtime"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// TestExact compares cswitch's counts with the kernel's own counters in
// /proc/PID/task/TID/status over the same window, for a pipe ping-pong
// (voluntary switches) and two CPU-bound workers on one CPU (involuntary
// ones). The window is opened and closed while every worker thread is
// blocked in read(2) on its stdin, so neither side can be mid-switch.
// The only hook, sched_switch, is driven by every worker; the BTF and the
// raw tracepoint program each run once.
func TestExact(t *testing.T) {
	// Cleared, not inherited: a BPFKIT_NO_TP_BTF set by the caller (vmtest
	// forwards BPFKIT_*) would test the raw path twice.
	t.Setenv(loader.NoBTFTracepointsEnv, "")
	exact(t, "sched_switch_btf", "sched_switch_raw")
}

// TestExactRawTracepoint: the same with the raw tracepoint fallback.
func TestExactRawTracepoint(t *testing.T) {
	t.Setenv(loader.NoBTFTracepointsEnv, "1")
	exact(t, "sched_switch_raw", "sched_switch_btf")
}

// exact runs the comparison with program want loaded and not other.
func exact(t *testing.T, want, other string) {
	testkit.RequireRoot(t)
	a, b := testkit.PingPong(t, 5000, -1)
	cpu := runtime.NumCPU() - 1
	s1 := testkit.Spin(t, cpu, 300*time.Millisecond)
	s2 := testkit.Spin(t, cpu, 300*time.Millisecond)
	sig := testkit.Signalled(t, 20000, 20*time.Microsecond)
	workers := []*testkit.Worker{a, b, s1, s2, sig}

	all, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	if progs := all.objs.Collection.Programs; progs[want] == nil || progs[other] != nil {
		t.Fatalf("want %s loaded and not %s: %v", want, other, progs)
	}
	onlyA, err := New(Config{Filter: loader.TaskFilter{PID: uint32(a.PID)}})
	if err != nil {
		t.Fatal(err)
	}
	defer onlyA.Close()

	type pair struct{ vol, invol uint64 }
	procBefore := map[int]pair{}
	for _, w := range workers {
		v, i := w.CtxSwitches(t)
		procBefore[w.TID] = pair{v, i}
	}
	before, err := all.Totals()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range workers {
		w.Release(t)
	}
	for _, w := range workers {
		w.Wait(t)
	}
	after, err := all.Totals()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range workers {
		v, i := w.CtxSwitches(t)
		want := pair{v - procBefore[w.TID].vol, i - procBefore[w.TID].invol}
		got := pair{after[uint32(w.TID)].Voluntary - before[uint32(w.TID)].Voluntary,
			after[uint32(w.TID)].Involuntary - before[uint32(w.TID)].Involuntary}
		t.Logf("pid %d tid %d: /proc %+v, cswitch %+v", w.PID, w.TID, want, got)
		if got != want {
			t.Errorf("pid %d tid %d: cswitch counted %+v, /proc/PID/status says %+v", w.PID, w.TID, got, want)
		}
		if c := after[uint32(w.TID)]; c.PID != uint32(w.PID) {
			t.Errorf("tid %d: pid %d, want %d", w.TID, c.PID, w.PID)
		}
	}
	// The workloads must have done what they are for.
	// Each round trip switches a out at least once: blocked in read, or
	// preempted by b as it wakes b up.
	if d := after[uint32(a.TID)].Total() - before[uint32(a.TID)].Total(); d < 5000 {
		t.Errorf("ping-pong made %d switches, want >= 5000", d)
	}
	for _, s := range []*testkit.Worker{s1, s2} {
		if d := after[uint32(s.TID)].Involuntary - before[uint32(s.TID)].Involuntary; d == 0 {
			t.Errorf("spinner %d was never preempted", s.PID)
		}
	}

	// The pid filter works in the kernel: only a's threads are counted.
	onlyCounts, err := onlyA.Totals()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := onlyCounts[uint32(a.TID)]; !ok {
		t.Errorf("filtered tracer did not count pid %d", a.PID)
	}
	for tid, c := range onlyCounts {
		if c.PID != uint32(a.PID) {
			t.Errorf("filtered on pid %d, counted tid %d of pid %d", a.PID, tid, c.PID)
		}
	}
	if all.Health().Lost != 0 {
		t.Errorf("%d threads not counted", all.Health().Lost)
	}
}

func TestTopPerProcess(t *testing.T) {
	counts := []Count{
		{PID: 1, TID: 1, Comm: "a", Voluntary: 1},
		{PID: 2, TID: 3, Comm: "b-worker", Voluntary: 2, Involuntary: 1},
		{PID: 2, TID: 2, Comm: "b", Involuntary: 4},
		{PID: 4, TID: 4, Comm: "c", Voluntary: 5},
	}
	got := Top(PerProcess(counts), 2)
	want := []Count{
		{PID: 2, Comm: "b", Voluntary: 2, Involuntary: 5},
		{PID: 4, Comm: "c", Voluntary: 5},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
