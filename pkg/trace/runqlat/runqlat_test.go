package runqlat

import (
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/loader/testkit"
	"github.com/bpfkit/bpfkit/pkg/trace/output"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// within reports the share of h's latencies in buckets [lo, hi].
func within(h Hist, lo, hi int) float64 {
	var n uint64
	for i := lo; i <= hi; i++ {
		n += h.Buckets[i]
	}
	return float64(n) / float64(h.Total())
}

// timeWithin reports the share of h's total wait time (estimated at each
// bucket's middle) spent in waits of buckets [lo, hi].
func timeWithin(h Hist, lo, hi int) float64 {
	var in, all float64
	for i, c := range h.Buckets {
		low, high := output.Log2Bounds(i)
		w := float64(c) * float64(low+high) / 2
		all += w
		if i >= lo && i <= hi {
			in += w
		}
	}
	return in / all
}

// TestContention: two CPU-bound workers on one CPU take turns; each waits
// for the other's slice (a few ms) each time. Every switch-in of the worker
// threads (selected by their comm) lands in a histogram.
func TestContention(t *testing.T) { contention(t) }

// TestContentionRawTracepoint: the same with the raw tracepoint fallback.
func TestContentionRawTracepoint(t *testing.T) {
	t.Setenv(loader.NoBTFTracepointsEnv, "1")
	contention(t)
}

func contention(t *testing.T) {
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
		if _, raw := tr.objs.Collection.Programs["sched_wakeup_raw"]; raw != (os.Getenv(loader.NoBTFTracepointsEnv) != "") {
			t.Fatalf("wrong programs loaded: %v", tr.objs.Collection.Programs)
		}
		tracers = append(tracers, tr)
	}
	var insBefore [2]uint64
	for i, s := range []*testkit.Worker{s1, s2} {
		_, _, insBefore[i] = s.SchedStat(t)
	}
	s1.Release(t)
	s2.Release(t)
	s1.Wait(t)
	s2.Wait(t)

	for i, s := range []*testkit.Worker{s1, s2} {
		hists, err := tracers[i].Totals()
		if err != nil {
			t.Fatal(err)
		}
		st, err := tracers[i].Stats()
		if err != nil {
			t.Fatal(err)
		}
		if len(hists) != 1 || hists[0].Key != uint32(s.TID) || hists[0].Comm != testkit.SpinComm {
			t.Fatalf("want one histogram for tid %d, got %+v", s.TID, hists)
		}
		h := hists[0]
		t.Logf("stats %+v\n%s", st, AppendText(nil, &Report{Unit: "usecs", By: ByThread, Hist: h}))
		if st.NoStart > 1+st.SwitchIns/100 || st.Lost != 0 {
			t.Errorf("tid %d: switch-ins without an enqueue time: %d, lost: %d", s.TID, st.NoStart, st.Lost)
		}
		if h.Total() != st.SwitchIns-st.NoStart {
			t.Errorf("tid %d: histogram holds %d latencies, switched in %d times", s.TID, h.Total(), st.SwitchIns)
		}
		if h.Total() < 4 {
			t.Errorf("tid %d: only %d switch-ins: the workers did not contend", s.TID, h.Total())
		}
		// The kernel keeps its own count of switch-ins (schedstat).
		_, _, ins := s.SchedStat(t)
		checkSchedStat(t, h, st, ins-insBefore[i])
		// CPU-bound tasks wait for whole slices, not µs: most of the wait
		// time is in waits of 256 us or more. (How long exactly depends on
		// what else the machine runs on that CPU.)
		if share := timeWithin(h, 8, Slots-1); share < 0.75 {
			t.Errorf("tid %d: %.0f%% of the wait time in waits of 256us or more, want most", s.TID, 100*share)
		}
	}
}

// checkSchedStat compares a histogram with the kernel's schedstat of the
// same thread over the same window: the switch-ins are equal (but for
// NoStart ones, which schedstat counts and the histogram cannot). Seen
// here: now and then schedstat counts one switch-in more than sched_switch
// showed (not explained yet), so one of difference is allowed. The time
// waiting is not compared: on 6.12+ kernels schedstat leaves out the wait
// of a task woken while its dequeue was delayed, which runqlat counts.
func checkSchedStat(t *testing.T, h Hist, st Stats, ins uint64) {
	t.Helper()
	got := h.Total() + st.NoStart
	t.Logf("schedstat: %d switch-ins; histogram: %d (+%d without enqueue time)", ins, h.Total(), st.NoStart)
	// The kernel's own count (schedstat pcount) is a cross-check only: it
	// has been seen a switch-in or two above what sched_switch reported
	// (cause unexplained; see the package's known issues): allow 1% + 1.
	if got > ins || ins-got > 1+ins/100 {
		t.Errorf("histogram holds %d latencies (+%d without enqueue time), schedstat counts %d switch-ins", h.Total(), st.NoStart, ins)
	}
}

// TestIdle: a task that sleeps 1 ms at a time on a CPU nobody competes for
// (much) gets it back quickly: most waits are under 128 µs.
func TestIdle(t *testing.T) {
	testkit.RequireRoot(t)
	w := testkit.Nanosleep(t, 200, time.Millisecond)
	tr, err := New(Config{Filter: loader.TaskFilter{TID: uint32(w.TID)}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	_, _, ins0 := w.SchedStat(t)
	w.Release(t)
	w.Wait(t)
	_, _, ins1 := w.SchedStat(t)
	hists, err := tr.Totals()
	if err != nil {
		t.Fatal(err)
	}
	st, err := tr.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(hists) != 1 || hists[0].Key != 0 {
		t.Fatalf("want one global histogram, got %+v", hists)
	}
	h := hists[0]
	t.Logf("\n%s", AppendText(nil, &Report{Unit: "usecs", Hist: h}))
	// Every switch-in is in the histogram but those without an enqueue
	// time (NoStart). The worker blocked in read(2) before tracing began
	// and every later switch-in follows a traced wakeup or preemption,
	// except, rarely, on 6.12+ kernels: a task switched out blocked (state
	// S) is switched in again before the sched_wakeup of its timer fires
	// (seen about once in 2000 switches here; see KNOWN_ISSUES in the
	// package doc). Those cannot be measured and are NoStart: allow 1% (and one).
	if h.Total() != st.SwitchIns-st.NoStart || st.NoStart > 1+st.SwitchIns/100 {
		t.Errorf("histogram holds %d, switch-ins %+v", h.Total(), st)
	}
	t.Logf("%+v", st)
	checkSchedStat(t, h, st, ins1-ins0)
	// A sleep whose timer fires before the task gets to schedule() makes
	// no switch, a preemption makes one more: about 200.
	if h.Total() < 100 {
		t.Errorf("%d latencies for 200 sleeps", h.Total())
	}
	if share := within(h, 0, 6); share < 0.5 {
		t.Errorf("%.0f%% of waits under 128us, want most", 100*share)
	}
}
