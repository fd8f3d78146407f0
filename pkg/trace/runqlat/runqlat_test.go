package runqlat

// The hooks each test drives:
//   - sched_switch: every test (switch-ins end the waits; switch-outs of
//     preempted spinners start them: TestContention, TestAttachWhileRunning).
//   - sched_wakeup: TestContention (Release wakes the spinners), TestIdle
//     (the timer wakes the sleeper), TestFork (the child's exec or exit
//     wakes the parent out of vfork and wait4).
//   - sched_wakeup_new: TestFork (each child's first wakeup).
// The Contention tests run with the BTF and the raw tracepoint programs.

import (
	"math"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// TestContention: two CPU-bound workers on one CPU take turns; each waits
// for the other's slice (a few ms) each time. Every switch-in of the worker
// threads (selected by tid) lands in a histogram.
func TestContention(t *testing.T) {
	// Cleared, not inherited: a BPFKIT_NO_TP_BTF set by the caller (vmtest
	// forwards BPFKIT_*) would test the raw path twice.
	t.Setenv(loader.NoBTFTracepointsEnv, "")
	contention(t, false)
}

// TestContentionRawTracepoint: the same with the raw tracepoint fallback.
func TestContentionRawTracepoint(t *testing.T) {
	t.Setenv(loader.NoBTFTracepointsEnv, "1")
	contention(t, true)
}

// checkVariant fails unless the tracer runs the raw tracepoint programs
// (raw) or the BTF ones, each of its three hooks.
func checkVariant(t *testing.T, tr *Tracer, raw bool) {
	t.Helper()
	progs := tr.objs.Collection.Programs
	for _, hook := range []string{"sched_switch", "sched_wakeup", "sched_wakeup_new"} {
		want, not := hook+"_btf", hook+"_raw"
		if raw {
			want, not = not, want
		}
		if progs[want] == nil || progs[not] != nil {
			t.Fatalf("want %s loaded and not %s: %v", want, not, progs)
		}
	}
}

func contention(t *testing.T, raw bool) {
	testkit.RequireRoot(t)
	cpu := runtime.NumCPU() - 1
	s1 := testkit.Spin(t, cpu, 500*time.Millisecond)
	s2 := testkit.Spin(t, cpu, 500*time.Millisecond)

	var tracers []*Tracer
	for _, s := range []*testkit.Worker{s1, s2} {
		tr, err := New(Config{Filter: loader.TaskFilter{TID: uint32(s.TID)}, Key: ByThread})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		checkVariant(t, tr, raw)
		tracers = append(tracers, tr)
	}
	var before [2]threadStat
	for i, s := range []*testkit.Worker{s1, s2} {
		before[i] = readThread(t, s)
	}
	s1.Release(t)
	s2.Release(t)
	s1.Wait(t)
	s2.Wait(t)

	for i, s := range []*testkit.Worker{s1, s2} {
		hists, st := read(t, tracers[i])
		if len(hists) != 1 || hists[0].Key != uint32(s.TID) || hists[0].Comm != testkit.SpinComm {
			t.Fatalf("want one histogram for tid %d, got %+v", s.TID, hists)
		}
		h := hists[0]
		t.Logf("tid %d: %+v\n%s", s.TID, st, AppendText(nil, &Report{Unit: "usecs", By: ByThread, Hist: h}))
		// The spinners were blocked in read(2) when the tracer attached,
		// Release's wakeup is traced and they do not block again until
		// the end: no switch-in lacks its start, on any kernel.
		if st.NoStart != 0 {
			t.Errorf("tid %d: %d switch-ins without an enqueue time, want 0", s.TID, st.NoStart)
		}
		if h.Total() < 4 {
			t.Errorf("tid %d: only %d switch-ins: the workers did not contend", s.TID, h.Total())
		}
		checkKernel(t, h, st, readThread(t, s).sub(before[i]), time.Microsecond)
	}
}

// read returns a tracer's histograms and stats, failing on a loss.
func read(t *testing.T, tr *Tracer) ([]Hist, Stats) {
	t.Helper()
	hists, err := tr.Totals()
	if err != nil {
		t.Fatal(err)
	}
	st, err := tr.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if h := tr.Health(); h.Lost != 0 || h.Missed != 0 {
		t.Errorf("lost %d latencies, missed %d events", h.Lost, h.Missed)
	}
	var total uint64
	for _, h := range hists {
		total += h.Total()
	}
	if total != st.SwitchIns-st.NoStart {
		t.Errorf("histograms hold %d latencies, switch-ins %+v", total, st)
	}
	return hists, st
}

// threadStat is what the kernel counts of a thread: its context switches
// (/proc/PID/task/TID/status) and its time waiting on a run queue
// (run_delay, /proc/PID/task/TID/schedstat).
type threadStat struct {
	switches uint64
	waiting  time.Duration
}

func readThread(t *testing.T, w *testkit.Worker) threadStat {
	v, i := w.CtxSwitches(t)
	_, waiting, _ := w.SchedStat(t)
	return threadStat{v + i, waiting}
}

func (s threadStat) sub(o threadStat) threadStat {
	return threadStat{s.switches - o.switches, s.waiting - o.waiting}
}

// checkKernel compares a thread's histogram with what the kernel counted
// of it over the same window, opened and closed while the thread was
// blocked in read(2) (so neither count can be mid-switch).
//
// Switch-ins: exactly the kernel's count of switches. __schedule
// increments nvcsw or nivcsw of the task it switches out right before
// sched_switch, and in a window that starts and ends with the thread
// blocked it was switched in as many times as out. (schedstat's pcount is
// not that count: on 6.18 it was seen one above or below sched_switch now
// and then, as it is kept by the sched_info accounting, not by the switch.)
//
// Wait time: schedstat's run_delay adds up the same waits, each between
// its bucket's bounds. Both ends of each wait are taken a little apart
// (run_delay from the enqueue to the switch-in's sched_info_arrive, the
// histogram from the wakeup or switch-out tracepoint to the switch-in's),
// by at most shift each. On 6.12+ (EEVDF delayed dequeue) run_delay
// leaves out the wait of a task woken while its dequeue was delayed (seen
// on 6.18: 0.1 ms of run_delay for 200 waits of 1 ms sleeps, the
// histogram's adding up to over 2 ms): there it is only an upper bound.
func checkKernel(t *testing.T, h Hist, st Stats, k threadStat, unit time.Duration) {
	t.Helper()
	t.Logf("kernel: %d switches, %s waiting; histogram: %d (+%d without enqueue time)", k.switches, k.waiting, h.Total(), st.NoStart)
	if n := h.Total() + st.NoStart; n > k.switches || k.switches-n > testkit.UntracedSwitchIns(k.switches) {
		t.Errorf("histogram holds %d latencies (+%d without enqueue time), the kernel counts %d switches", h.Total(), st.NoStart, k.switches)
	}
	shift := clockShift()
	var lo, hi time.Duration
	for i, c := range h.Buckets {
		low, high := output.Log2Bounds(i)
		lo += time.Duration(c*low) * unit
		hi += time.Duration(c*(high+1)) * unit
	}
	slack := time.Duration(h.Total()) * shift
	if testkit.KernelAtLeast(6, 12) || st.NoStart != 0 {
		lo = 0 // run_delay has waits the histogram does not
	}
	t.Logf("histogram waits between %s and %s (±%s); run_delay %s", lo, hi, slack, k.waiting)
	if testkit.Emulated() {
		// vmtest runs qemu's TCG single-threaded (vmtest/qemu.go): the
		// guest's two vCPUs take turns of up to qemu's 100 ms kick period,
		// longer when the host deschedules qemu, while the guest's clock
		// runs on. A vCPU frozen between sched_info's clock read and the
		// tracepoint's (enqueue before sched_wakeup, sched_switch before
		// sched_info_arrive) puts the whole frozen time into one of the
		// two sums and not the other, in either direction (seen on 6.12
		// in CI: run_delay 408 ms, 33 waits adding up to at most 56 ms;
		// earlier 9% in sched record on 7.2). No bound holds there: the
		// wait times are checked against run_delay on real CPUs only.
		return
	}
	if n := h.Total() + st.NoStart; k.switches > n {
		// A switch-in without sched_switch (6.12+, untracedSwitchIns,
		// checked above): its wait is in run_delay and in no bucket, so
		// the histogram bounds run_delay from below only (seen on 6.18:
		// 70 switches, 69 traced, run_delay 4.5 ms over the buckets).
		hi = time.Duration(math.MaxInt64 / 2)
	}
	if k.waiting < lo-slack || k.waiting > hi+slack {
		t.Errorf("schedstat has %s waiting, the histogram's waits add up to %s..%s (±%s)", k.waiting, lo, hi, slack)
	}
}

// clockShift bounds how far apart two clock reads meant for one scheduler
// event are: the code of __schedule and ttwu between sched_info's and the
// tracepoint's, or between two tracers' programs on one tracepoint, well
// under 2 µs natively; up to ~120 µs when every instruction is emulated
// (vmtest under TCG; seen in sched record on 5.10).
func clockShift() time.Duration {
	if testkit.Emulated() {
		return 150 * time.Microsecond
	}
	return 2 * time.Microsecond
}

// delayedNoStart is how many switch-ins of a thread that blocked n times
// may lack their enqueue time. On 6.12+ kernels (EEVDF with delayed
// dequeue) a task switched out blocked is, rarely, switched in again
// before the sched_wakeup that ends its sleep is traced (see the package
// doc): seen on 6.18 up to 2 in 200 1 ms sleeps, in 3 runs of 15. Never
// before 6.12, and never for a thread that does not block.
func delayedNoStart(n uint64) uint64 {
	if !testkit.KernelAtLeast(6, 12) {
		return 0
	}
	return 1 + n/50
}

// TestIdle: a task that sleeps 1 ms at a time: the timer's sched_wakeup
// starts each wait, and each is in the histogram. Two tracers take the
// same waits, in µs and in ms. In ms, every wait under 2 ms is in the
// lowest bucket (slot 0): nearly all of them here (a few µs each, natively
// and under TCG), so a slot 0 dropped or misfiled fails read's exact total
// or checkUnits (the µs buckets above 1 µs say how many ms slot 0 holds;
// none of the other tests has a wait under 2 µs for sure).
func TestIdle(t *testing.T) {
	testkit.RequireRoot(t)
	w := testkit.Nanosleep(t, 200, time.Millisecond)
	var trs [2]*Tracer // µs, ms
	for i := range trs {
		tr, err := New(Config{Filter: loader.TaskFilter{TID: uint32(w.TID)}, Milliseconds: i == 1})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		trs[i] = tr
	}
	before := readThread(t, w)
	v0, _ := w.CtxSwitches(t)
	w.Release(t)
	w.Wait(t)
	v1, _ := w.CtxSwitches(t)
	blocked := v1 - v0 - 1 // but for the last (read(2) on stdin)
	k := readThread(t, w).sub(before)
	var hs [2]Hist
	var sts [2]Stats
	for i, unit := range []struct {
		d    time.Duration
		name string
	}{{time.Microsecond, "usecs"}, {time.Millisecond, "msecs"}} {
		hists, st := read(t, trs[i])
		if len(hists) != 1 || hists[0].Key != 0 {
			t.Fatalf("want one global histogram, got %+v", hists)
		}
		h := hists[0]
		t.Logf("%+v\n%s", st, AppendText(nil, &Report{Unit: unit.name, Hist: h}))
		// The worker blocked in read(2) before tracing began and every
		// later switch-in follows a traced wakeup or preemption (but see
		// delayedNoStart).
		if st.NoStart > delayedNoStart(blocked) {
			t.Errorf("%d switch-ins without an enqueue time, want at most %d", st.NoStart, delayedNoStart(blocked))
		}
		checkKernel(t, h, st, k, unit.d)
		hs[i], sts[i] = h, st
	}
	// Both tracers see the same switch-ins (read checks that neither
	// missed a run), with or without their enqueue time alike.
	if sts[0] != sts[1] {
		t.Errorf("switch-ins in µs %+v, in ms %+v: not the same", sts[0], sts[1])
	}
	checkUnits(t, hs[0], hs[1])
	// Workload sanity: a sleep whose timer fires before the task gets to
	// schedule() makes no switch; most do.
	if blocked < 100 {
		t.Errorf("%d sleeps blocked of 200", blocked)
	}
}

// checkUnits checks the ms histogram of the waits whose µs histogram is
// us: each wait is in both, its two measures apart by at most clockShift
// (the two tracers' programs run one after the other on each tracepoint).
// So below each ms bucket's upper edge lie at least the waits of the µs
// buckets wholly below it, and at most those not wholly above it: for
// waits of a few µs, all of them in ms bucket 0.
//
// Under TCG the host can deschedule the guest's vCPU thread between the
// two programs, and the guest's clock runs on meanwhile: a few waits may
// then be measured more than clockShift apart (seen on 5.10: one of 202,
// at least 4.15 ms in µs and under 4 ms in ms). At most 1 in 50 of them,
// under TCG only; a slot 0 dropped or misfiled moves them nearly all.
func checkUnits(t *testing.T, us, ms Hist) {
	t.Helper()
	if us.Total() != ms.Total() {
		t.Errorf("%d waits in µs, %d in ms", us.Total(), ms.Total())
	}
	shift := clockShift()
	var stray uint64
	if testkit.Emulated() {
		stray = 1 + us.Total()/50
	}
	var cum uint64 // ms waits in buckets 0..j
	for j := range Slots - 1 {
		cum += ms.Buckets[j]
		_, high := output.Log2Bounds(j)
		edge := time.Duration(high+1) * time.Millisecond
		var below, above uint64
		for i, c := range us.Buckets {
			low, high := output.Log2Bounds(i)
			if time.Duration(high+1)*time.Microsecond+shift <= edge {
				below += c
			}
			if time.Duration(low)*time.Microsecond >= edge+shift {
				above += c
			}
		}
		if cum+stray < below || cum > us.Total()-above+stray {
			t.Errorf("%d waits under %s in ms, want %d..%d from the µs histogram (±%d)", cum, edge, below, us.Total()-above, stray)
			return
		}
	}
}

// TestAttachWhileRunning: two spinners share a CPU before the tracer
// attaches, so one of them (or both, if a third task had the CPU) waits on
// the run queue at that moment: its next switch-in has no enqueue time
// (NoStart). That is the only kind of switch-in without one, at most one
// per thread.
func TestAttachWhileRunning(t *testing.T) {
	testkit.RequireRoot(t)
	cpu := runtime.NumCPU() - 1
	// Long enough to outlast the attach (seconds under TCG, more on a
	// loaded host): ten times what an attach takes now, and 3 s.
	start := time.Now()
	probe, err := New(Config{Filter: loader.TaskFilter{Comm: testkit.SpinComm}, Key: ByThread})
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()
	d := 3*time.Second + 10*time.Since(start)
	spinners := []*testkit.Worker{testkit.Spin(t, cpu, d), testkit.Spin(t, cpu, d)}
	for _, s := range spinners {
		s.Release(t)
	}
	// Both have run (each spins first, then the other preempts it).
	var o0 [2]uint64
	for i, s := range spinners {
		for readThread(t, s).switches < 2 {
			time.Sleep(time.Millisecond)
		}
		o0[i] = readThread(t, s).switches
	}
	// Spin holds a machine-wide lock: no other test's spinner runs now.
	tr, err := New(Config{Filter: loader.TaskFilter{Comm: testkit.SpinComm}, Key: ByThread})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	t.Logf("spinning %s", d)
	var o1 [2]uint64
	for i, s := range spinners {
		o1[i] = readThread(t, s).switches
		if st := s.State(t); st != 'R' {
			t.Fatalf("spinner %d in state %c after the attach: it stopped spinning too early", s.TID, st)
		}
	}
	for _, s := range spinners {
		s.Wait(t)
	}
	hists, st := read(t, tr)
	t.Logf("%+v", st)
	// On 6.12+ the waiting spinner's first switch-in may be one the
	// programs do not see (testkit.UntracedSwitchIns): then it has none
	// (seen once, in the landing CI run of stop 19, on the 6.18 host).
	least := uint64(1)
	if testkit.UntracedSwitchIns(1) > 0 {
		least = 0
	}
	if st.NoStart < least || st.NoStart > 2 {
		t.Errorf("%d switch-ins without an enqueue time, want %d to 2 (one per spinner waiting when the tracer attached)", st.NoStart, least)
	}
	// From the attach to the end, a spinner waiting at the attach was
	// switched in (NoStart) as often as out; one running then was switched
	// out once more than in. So the switch-ins traced, plus 2, less
	// NoStart, are the switches the kernel counted since the attach; the
	// attach itself took a few, so that count is between those after it
	// and those before it.
	var atMost, atLeast uint64
	for i, s := range spinners {
		end := readThread(t, s).switches
		atMost += end - o0[i]
		atLeast += end - o1[i]
		if !slices.ContainsFunc(hists, func(h Hist) bool { return h.Key == uint32(s.TID) }) {
			t.Errorf("no histogram for spinner %d", s.TID)
		}
	}
	if n := st.SwitchIns + 2 - st.NoStart; n+testkit.UntracedSwitchIns(atMost) < atLeast || n > atMost {
		t.Errorf("%d switch-ins traced (+2-%d NoStart), the kernel counts %d..%d switches", st.SwitchIns, st.NoStart, atLeast, atMost)
	}
}

// TestFork: a worker starts children (fork and exec); each child's first
// switch-in follows its sched_wakeup_new, the parent's follow the
// sched_wakeup of the child's exec (vfork) and exit (wait4). All keep the
// worker's comm until exec: a comm filter selects exactly them.
func TestFork(t *testing.T) {
	testkit.RequireRoot(t)
	const n = 10
	w, children := testkit.Forker(t, n)
	tr, err := New(Config{Filter: loader.TaskFilter{Comm: testkit.ForkComm(w)}, Key: ByThread})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	before := readThread(t, w)
	w.Release(t)
	w.Wait(t)
	after := readThread(t, w)
	pids := children()
	hists, st := read(t, tr)
	t.Logf("%+v", st)
	// Without sched_wakeup_new, every child's first switch-in would lack
	// its start. The parent blocks (vfork, wait4): see delayedNoStart.
	if allowed := delayedNoStart(after.switches - before.switches); st.NoStart > allowed {
		t.Errorf("%d switch-ins without an enqueue time, want at most %d", st.NoStart, allowed)
	}
	for _, h := range hists {
		switch {
		case h.Key == uint32(w.TID):
			checkKernel(t, h, Stats{NoStart: st.NoStart}, after.sub(before), time.Microsecond)
		case slices.Contains(pids, int(h.Key)):
			pids = slices.DeleteFunc(pids, func(p int) bool { return p == int(h.Key) })
		default:
			t.Errorf("histogram of tid %d (%q): not the forker %d nor one of its children", h.Key, h.Comm, w.TID)
		}
	}
	// Each child ran before its exec, so it has a histogram.
	if len(pids) != 0 {
		t.Errorf("children %v have no histogram", pids)
	}
}
