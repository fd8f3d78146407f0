package schedrecord

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

type traceFile struct {
	TraceEvents []struct {
		Name string          `json:"name"`
		Ph   string          `json:"ph"`
		Ts   float64         `json:"ts"`
		Dur  float64         `json:"dur"`
		Pid  *int            `json:"pid"`
		Tid  int             `json:"tid"`
		Args json.RawMessage `json:"args"`
	} `json:"traceEvents"`
}

// TestRecord: while two CPU-bound workers share a CPU, two others play
// ping-pong on the other CPU and a fifth starts child processes, the
// recording is valid trace-event JSON in which
//   - each worker has one slice per context switch the kernel counted
//     (sched_switch: a slice ends at each switch-out);
//   - each ping-pong worker was woken at least once per time it blocked
//     (sched_wakeup);
//   - each child process was woken new exactly once (sched_wakeup_new);
//   - each worker's slices add up to its CPU time (schedstat).
func TestRecord(t *testing.T) {
	testkit.RequireRoot(t)
	const rounds, forks = 2000, 5
	cpu := runtime.NumCPU() - 1
	s1 := testkit.Spin(t, cpu, 300*time.Millisecond)
	s2 := testkit.Spin(t, cpu, 300*time.Millisecond)
	a, b := testkit.PingPong(t, rounds, (cpu+1)%runtime.NumCPU())
	f, children := testkit.Forker(t, forks)
	workers := []*testkit.Worker{s1, s2, a, b, f}

	r, err := New(Config{Wakeups: true, MaxEvents: DefaultMaxEvents})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	var st Stats
	go func() {
		var err error
		st, err = r.Record(ctx, &out, nil)
		done <- err
	}()

	type switches struct{ vol, invol uint64 }
	cpuBefore := map[int]time.Duration{}
	swBefore := map[int]switches{}
	for _, w := range workers {
		cpuBefore[w.TID] = w.CPUTime(t)
		v, i := w.CtxSwitches(t)
		swBefore[w.TID] = switches{v, i}
	}
	stealBefore := map[int]time.Duration{}
	for c := 0; c < runtime.NumCPU(); c++ {
		stealBefore[c] = testkit.StealTime(t, c)
	}
	for _, w := range workers {
		w.Release(t)
	}
	for _, w := range workers {
		w.Wait(t)
	}
	cpuUsed := map[int]time.Duration{}
	sw := map[int]switches{}
	for _, w := range workers {
		cpuUsed[w.TID] = w.CPUTime(t) - cpuBefore[w.TID]
		v, i := w.CtxSwitches(t)
		sw[w.TID] = switches{v - swBefore[w.TID].vol, i - swBefore[w.TID].invol}
	}
	steal := map[int]time.Duration{}
	for c := 0; c < runtime.NumCPU(); c++ {
		steal[c] = testkit.StealTime(t, c) - stealBefore[c]
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v, %d bytes", st, out.Len())
	if st.Lost != 0 || st.Capped {
		t.Fatalf("lost %d events, capped %v", st.Lost, st.Capped)
	}

	var tf traceFile
	if err := json.Unmarshal(out.Bytes(), &tf); err != nil {
		t.Fatalf("not valid JSON: %v", err)
	}
	ran := map[int]time.Duration{}
	runs := map[int]int{}
	woken := map[int]int{}    // sched_wakeup instants by tid
	wokenNew := map[int]int{} // sched_wakeup_new instants by tid
	cpuTracks := map[int]bool{}
	var slices, wakeups uint64
	for _, e := range tf.TraceEvents {
		if e.Pid == nil || e.Ph == "" || e.Name == "" {
			t.Fatalf("event without ph, name or pid: %+v", e)
		}
		switch e.Ph {
		case "M":
			if e.Name == "thread_name" {
				cpuTracks[e.Tid] = true
			}
		case "X":
			slices++
			var args struct{ Tid int }
			if err := json.Unmarshal(e.Args, &args); err != nil {
				t.Fatal(err)
			}
			if e.Dur < 0 || !cpuTracks[e.Tid] {
				t.Fatalf("slice %+v", e)
			}
			ran[args.Tid] += time.Duration(e.Dur * 1000)
			runs[args.Tid]++
		case "i":
			wakeups++
			var args struct{ Tid int }
			if err := json.Unmarshal(e.Args, &args); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(e.Name, "wakeup_new ") {
				wokenNew[args.Tid]++
			} else {
				woken[args.Tid]++
			}
		default:
			t.Fatalf("unexpected event %+v", e)
		}
	}
	if slices+wakeups != st.Written || wakeups != st.Wakeups {
		t.Errorf("%d slices, %d wakeups in the file; stats %+v", slices, wakeups, st)
	}
	if !cpuTracks[cpu] {
		t.Errorf("no track for CPU %d", cpu)
	}
	// Slices: the window opens and closes with every worker blocked in
	// read(2) on its stdin, so each switch the kernel counted
	// (/proc/PID/task/TID/status) is a switch-out, and each ends a slice.
	for _, w := range workers {
		if want := sw[w.TID].vol + sw[w.TID].invol; uint64(runs[w.TID]) != want {
			t.Errorf("tid %d: %d slices, the kernel counts %d switches (%+v)", w.TID, runs[w.TID], want, sw[w.TID])
		}
	}
	// Wakeups: a worker that blocked k times was woken k times (the
	// wakeup that Release causes ends the block before the window; the
	// last block ends after it), or more: a wakeup can come after the
	// task marked itself sleeping but before it switched out, and then
	// it does not block. No signal reaches the workers, so every
	// voluntary switch is a block.
	for _, w := range []*testkit.Worker{a, b, f} {
		if woken[w.TID] < int(sw[w.TID].vol) {
			t.Errorf("tid %d: %d wakeups, blocked %d times", w.TID, woken[w.TID], sw[w.TID].vol)
		}
	}
	// The ping-pong rounds: on one CPU, a round in which neither worker
	// blocks needs b switched out, preempted, between its write and its
	// next read (a must run in between). So the blocks (each followed by
	// a wakeup, checked above) and b's preemptions are at least the
	// rounds.
	if n := sw[a.TID].vol + sw[b.TID].vol + sw[b.TID].invol; n < rounds {
		t.Errorf("ping-pong: %d blocks and preemptions for %d rounds", n, rounds)
	}
	// Each child's first wakeup, and only that, is a wakeup_new.
	pids := children()
	for _, pid := range pids {
		if wokenNew[pid] != 1 {
			t.Errorf("child %d: %d wakeup_new instants, want 1", pid, wokenNew[pid])
		}
	}
	if wokenNew[f.TID] != 0 || woken[f.TID] == 0 {
		t.Errorf("forker %d: %d wakeup_new and %d wakeup instants", f.TID, wokenNew[f.TID], woken[f.TID])
	}

	// Slices run from one sched_switch to the next; the kernel's CPU time
	// of the next task starts when it is picked, a little before the
	// tracepoint (and the BPF program) runs: each slice boundary may move
	// up to ~1 µs from prev to next. For the spinners (runs of ms) that is
	// nothing; for ping-pong (runs of 2-3 µs) it is a sizeable part. In a
	// VM, CPU time also leaves out steal time (the hypervisor ran another
	// guest), which wall-clock slices include: /proc/stat counts it in
	// 10 ms ticks, so the slices may exceed CPU time by the CPU's steal
	// time plus 10 ms.
	for _, w := range []*testkit.Worker{s1, s2, a, b} {
		got, want := ran[w.TID], cpuUsed[w.TID]
		c := cpu
		if w == a || w == b {
			c = (cpu + 1) % runtime.NumCPU()
		}
		// The boundary shift per slice: ~1 µs here, up to ~120 µs when
		// every instruction is emulated (vmtest under TCG; seen on 5.10
		// for ping-pong: 260 ms over 2120 slices).
		shift := time.Microsecond
		if testkit.Emulated() {
			shift = 150 * time.Microsecond
		}
		// Under TCG the slices come out a few % under CPU time (seen: up
		// to 9% on 7.2 while four VMs ran side by side). Slices are
		// measured with ktime, CPU time with sched_clock; an emulated
		// guest's clocksource and sched_clock likely advance at slightly
		// different rates under load. Allow an eighth there.
		// Natively the sums came within ±2% of CPU time (6.18, 30
		// runs); the 5% also leaves room for the interrupts that run
		// while a worker is current, in its slices but, on kernels built
		// with IRQ_TIME_ACCOUNTING, not in its CPU time.
		margin := want/20 + time.Duration(runs[w.TID])*shift
		if testkit.Emulated() {
			margin = want/8 + time.Duration(runs[w.TID])*shift
		}
		if n := runs[w.TID]; testkit.Emulated() && want/time.Duration(n) < 50*time.Microsecond {
			// Runs of a few µs (ping-pong) under TCG: the boundary shift
			// is a large part of each: allow a fifth.
			margin = max(margin, want/5+time.Duration(n)*shift)
		}
		low, high := want-margin, want+margin+steal[c]+10*time.Millisecond
		t.Logf("tid %d: %d slices %s, CPU time %s (%+.1f%%), steal on CPU %d %s", w.TID, runs[w.TID], got, want, 100*float64(got-want)/float64(want), c, steal[c])
		if got < low || got > high {
			t.Errorf("tid %d: slices add up to %s, CPU time is %s: want %s..%s", w.TID, got, want, low, high)
		}
	}
}
