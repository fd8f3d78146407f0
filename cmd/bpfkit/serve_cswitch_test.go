package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
)

// Seen once on 6.1 when serve-threads locked its thread itself: "not on
// the main thread".
func init() { testkit.KeepMainThread("serve-threads") }

// serveThreadsWorkload: "K N" starts K threads that sleep N times each
// (voluntary switches) while spinning a little (involuntary ones, on a
// busy machine), then exit; once the kernel has released them all it
// answers with the exited threads' switches (exitedSwitches), voluntary
// and involuntary, before "done".
func serveThreadsWorkload([]string) int {
	// The main thread cannot exit alone (the Go runtime parks a locked
	// goroutine's main thread for good when the goroutine ends): keep it
	// (init locked it).
	if unix.Gettid() != unix.Getpid() {
		fmt.Fprintln(os.Stderr, "serve-threads: not on the main thread")
		return 1
	}
	return lines(func(line string) error {
		var k, n int
		fmt.Sscan(line, &k, &n)
		tids, errs := make(chan int, k), make(chan error, k)
		for range k {
			go func() {
				// Never unlocked: the thread exits with the goroutine.
				runtime.LockOSThread()
				tids <- unix.Gettid()
				for i := range n {
					unix.Nanosleep(&unix.Timespec{Nsec: 100000}, nil)
					for j := 0; j < 20000*(i%3); j++ {
						_ = j * j
					}
				}
				// Nothing preempts a SCHED_FIFO thread on its way out
				// between the point where the kernel adds its counts to
				// its process's (exitedSwitches) and its last switch.
				errs <- unix.SchedSetAttr(0, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 1}, 0)
			}()
		}
		for range k {
			if err := <-errs; err != nil {
				return fmt.Errorf("SCHED_FIFO: %w", err)
			}
		}
		for range k {
			task := fmt.Sprintf("/proc/self/task/%d", <-tids)
			if !testkit.WaitFor(20*time.Second, func() bool { _, err := os.Stat(task); return err != nil }) {
				return fmt.Errorf("%s did not go", task)
			}
		}
		vol, invol, err := exitedSwitches()
		if err != nil {
			return err
		}
		fmt.Println(vol, invol)
		return nil
	})
}

// exitedSwitches is the context switches of the calling process's threads
// that are gone, each up to the point where the kernel released it and
// added its counts to its process's (__exit_signal; its last switch, in
// TASK_DEAD, comes after). getrusage(RUSAGE_SELF) counts those with the
// live threads'; the live threads' own, read before and after, did not
// move in between: the difference is the exited threads'.
func exitedSwitches() (voluntary, involuntary float64, err error) {
	for range 100 {
		vol, invol, err := testkit.ProcessSwitches("self")
		if err != nil {
			return 0, 0, err
		}
		var ru unix.Rusage
		if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
			return 0, 0, err
		}
		vol2, invol2, err := testkit.ProcessSwitches("self")
		if err != nil {
			return 0, 0, err
		}
		if vol2 == vol && invol2 == invol {
			return float64(ru.Nvcsw) - vol, float64(ru.Nivcsw) - invol, nil
		}
	}
	return 0, 0, fmt.Errorf("the process's threads never stayed idle across getrusage")
}

// answer sends the workload a line and returns its answer, the line before
// "done", once it is idle again.
func (w *workload) answer(t *testing.T, line string) string {
	t.Helper()
	fmt.Fprintln(w.in, line)
	got, err := w.out.ReadString('\n')
	if err != nil {
		t.Fatalf("workload: %v", err)
	}
	if done, err := w.out.ReadString('\n'); err != nil || done != "done\n" {
		t.Fatalf("workload said %q then %q, %v", got, done, err)
	}
	testkit.WaitStdinRead(t, w.cmd.Process.Pid)
	return strings.TrimSpace(got)
}

// TestServeContextSwitches: serve's bpfkit_context_switches_total of a
// cgroup equals the kernel's own counts of its threads when threads exit
// and when a process moves to another cgroup (the two times a thread's
// counts move from its entry to its cgroup's retired counters), and never
// goes down from one scrape to the next while they move. Every kernel of
// the matrix: /metrics is read directly.
func TestServeContextSwitches(t *testing.T) {
	parent, read := serveMetrics(t, "cswitch")
	kinds := func(t *testing.T, rel string) (voluntary, involuntary float64) {
		return read(t, "bpfkit_context_switches_total", rel, `,kind="voluntary"`),
			read(t, "bpfkit_context_switches_total", rel, `,kind="involuntary"`)
	}
	// settled scrapes rel once the process pid's k exited threads (deadVol
	// and deadInvol switches, as the workload read them) have all made
	// their last switch, and returns what serve says, what the kernel
	// counts and the live threads' part of it. Each exited thread's last
	// switch, in TASK_DEAD, is voluntary (the kernel adds it to the
	// thread's nvcsw, which nothing can read any more): one each. It comes
	// after /proc shows the thread gone (release_task, in exit_notify,
	// runs before that last schedule()), so a scrape in between sees the
	// thread's entry without it, or, when its fold falls between the
	// scrape's two reads (retired, then the entries), none of its counts
	// (seen once on 5.10 in CI: 60 voluntary switches short). A later
	// scrape sees them all: the test scrapes until serve says what the
	// kernel counts, for up to 10 s. Counts too high never come down, and
	// counts lost never come back.
	//
	// One switch of an exited thread is not in what the workload reads:
	// a preemption between the kernel adding the thread's counts to its
	// process's (__exit_signal) and its last switch. SCHED_FIFO keeps
	// other threads out of that window, not a stopper (active load
	// balancing's migration thread) or a deadline task (the fair server,
	// 6.12+). serve counts it, rightly, as involuntary; nothing can read
	// it from /proc. Seen once under TCG, on 7.x in CI: 1 involuntary
	// switch above the kernel's 10337 after 800 exits, voluntary exact;
	// never on the host, where the window is a few microseconds. So only
	// in emulated VMs may the involuntary count be above, by no more than
	// one per exited thread (after a preemption the thread is first in
	// line again with only do_task_dead left); voluntary stays exact,
	// and below is never right.
	matches := func(gotVol, gotInvol, wantVol, wantInvol float64, k int) bool {
		slack := 0.0
		if testkit.Emulated() {
			slack = float64(k)
		}
		return gotVol == wantVol && gotInvol >= wantInvol && gotInvol <= wantInvol+slack
	}
	settled := func(t *testing.T, pid int, rel string, deadVol, deadInvol float64, k int) (gotVol, gotInvol, wantVol, wantInvol, liveVol, liveInvol float64) {
		t.Helper()
		testkit.WaitFor(10*time.Second, func() bool {
			liveVol, liveInvol = idleAcross(t, pid, func() { gotVol, gotInvol = kinds(t, rel) })
			wantVol, wantInvol = liveVol+deadVol+float64(k), liveInvol+deadInvol
			return matches(gotVol, gotInvol, wantVol, wantInvol, k)
		})
		return
	}
	// exited runs k threads of n sleeps each in w, and returns the
	// switches of all the process's threads that exited so far, which
	// /proc shows no more.
	exited := func(t *testing.T, w *workload, k, n int) (voluntary, involuntary float64) {
		if _, err := fmt.Sscan(w.answer(t, fmt.Sprint(k, n)), &voluntary, &involuntary); err != nil {
			t.Fatal(err)
		}
		return voluntary, involuntary
	}

	t.Run("threads that exit", func(t *testing.T) {
		rel, fd := testCgroup(t, parent, "exited")
		w := startWorkload(t, fd, "serve-threads")
		const k, n = 4, 50
		deadVol, deadInvol := exited(t, w, k, n)
		gotVol, gotInvol, wantVol, wantInvol, liveVol, liveInvol := settled(t, w.cmd.Process.Pid, rel, deadVol, deadInvol, k)
		if !matches(gotVol, gotInvol, wantVol, wantInvol, k) {
			t.Errorf("switches of the cgroup: voluntary %v, involuntary %v; the kernel says %v and %v (live threads %v and %v, %d exited threads %v and %v, and their last switches)",
				gotVol, gotInvol, wantVol, wantInvol, liveVol, liveInvol, k, deadVol, deadInvol)
		}
		if deadVol < k*n {
			t.Errorf("the exited threads made %v voluntary switches, fewer than their %d sleeps", deadVol, k*n)
		}
	})

	t.Run("moved between cgroups", func(t *testing.T) {
		root, err := loader.Cgroup2Root()
		if err != nil {
			t.Fatal(err)
		}
		// A switch of the process while it moves could count in either
		// cgroup: the move is kept only if /proc did not move across it,
		// else tried again with a new process and new cgroups.
		for try := 0; ; try++ {
			from, fd := testCgroup(t, parent, fmt.Sprint("from", try))
			to, _ := testCgroup(t, parent, fmt.Sprint("to", try))
			w := startWorkload(t, fd, "serve-switch")
			pid := w.cmd.Process.Pid
			w.do(t, "100")
			// Until the Go runtime of the child has settled (its sysmon
			// thread wakes often for a while after work).
			var beforeVol, beforeInvol float64
			testkit.WaitFor(5*time.Second, func() bool {
				vol, invol := switches(t, pid)
				time.Sleep(20 * time.Millisecond)
				beforeVol, beforeInvol = switches(t, pid)
				return vol == beforeVol && invol == beforeInvol
			})
			atMove := cswitchState(t, read, pid, from, to)
			if err := os.WriteFile(filepath.Join(root+to, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
				t.Fatal(err)
			}
			if vol, invol := switches(t, pid); vol != beforeVol || invol != beforeInvol {
				if try == 10 {
					t.Fatal("the workload never stayed idle across its move")
				}
				continue
			}
			w.do(t, "100")
			// Each thread's counts move to the first cgroup's retired
			// counters at its first switch after the move. /proc counts
			// that switch before the program folds (the kernel adds to
			// nvcsw before sched_switch): a scrape can see /proc still
			// and yet straddle the fold, and miss the counts it moves
			// (under TCG a vCPU can stop between the two). A later
			// scrape sees them: scrape until serve says what /proc
			// counts, for up to 10 s. Counts too high never come down,
			// and counts lost never come back: a shortfall on 6.1 in CI
			// (first cgroup 129 voluntary switches short) stayed for
			// the 10 s, a loss whose cause is not found yet.
			var fromVol, fromInvol, toVol, toInvol, vol, invol float64
			testkit.WaitFor(10*time.Second, func() bool {
				vol, invol = idleAcross(t, pid, func() {
					fromVol, fromInvol = kinds(t, from)
					toVol, toInvol = kinds(t, to)
				})
				return fromVol == beforeVol && fromInvol == beforeInvol && toVol == vol-beforeVol && toInvol == invol-beforeInvol
			})
			if fromVol != beforeVol || fromInvol != beforeInvol {
				t.Errorf("switches of the first cgroup: voluntary %v, involuntary %v; /proc said %v and %v at the move\nat the move:%s\nnow:%s",
					fromVol, fromInvol, beforeVol, beforeInvol, atMove, cswitchState(t, read, pid, from, to))
			}
			if toVol != vol-beforeVol || toInvol != invol-beforeInvol {
				t.Errorf("switches of the second cgroup: voluntary %v, involuntary %v; /proc says %v and %v since the move", toVol, toInvol, vol-beforeVol, invol-beforeInvol)
			}
			if vol-beforeVol < 400 {
				t.Errorf("only %v voluntary switches after the move: the workload did not run", vol-beforeVol)
			}
			return
		}
	})

	t.Run("scrapes while counts move", func(t *testing.T) {
		rel, fd := testCgroup(t, parent, "churn")
		w := startWorkload(t, fd, "serve-threads")
		// Threads start and exit all along (each exit moves its counts)
		// while the test scrapes.
		const rounds, k, n = 100, 8, 2
		done := make(chan error, 1)
		var last string // the exited threads' switches, after the last round
		go func() {
			for range rounds {
				fmt.Fprintln(w.in, k, n)
				var err error
				if last, err = w.out.ReadString('\n'); err != nil {
					done <- err
					return
				}
				if got, err := w.out.ReadString('\n'); err != nil || got != "done\n" {
					done <- fmt.Errorf("workload said %q, %v", got, err)
					return
				}
			}
			done <- nil
		}()
		var lastVol, lastInvol float64
		scrapes := 0
		for running := true; running; scrapes++ {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				running = false
			default:
			}
			vol, invol := kinds(t, rel)
			if vol < lastVol || invol < lastInvol {
				t.Errorf("scrape %d: voluntary %v, involuntary %v, after %v and %v", scrapes, vol, invol, lastVol, lastInvol)
			}
			lastVol, lastInvol = vol, invol
		}
		t.Logf("%d scrapes while %d threads came and went", scrapes, rounds*k)
		// And nothing was lost: as in "threads that exit".
		testkit.WaitStdinRead(t, w.cmd.Process.Pid)
		var deadVol, deadInvol float64
		if _, err := fmt.Sscan(last, &deadVol, &deadInvol); err != nil {
			t.Fatal(err)
		}
		if gotVol, gotInvol, wantVol, wantInvol, _, _ := settled(t, w.cmd.Process.Pid, rel, deadVol, deadInvol, rounds*k); !matches(gotVol, gotInvol, wantVol, wantInvol, rounds*k) {
			t.Errorf("switches of the cgroup: voluntary %v, involuntary %v; the kernel says %v and %v", gotVol, gotInvol, wantVol, wantInvol)
		}
		if deadVol < rounds*k*n {
			t.Errorf("the exited threads made %v voluntary switches, fewer than their %d sleeps", deadVol, rounds*k*n)
		}
	})
}

// cswitchState describes, for a failure message, what serve's cswitch
// program holds for process pid and for the cgroups named: each live
// thread's entry in its `threads` map next to /proc's counts of the
// thread, the cgroups' `retired` counters, and serve's lost and skipped
// counts. The maps are found by name among all the system's (the test runs
// one serve at a time).
func cswitchState(t *testing.T, read metricReader, pid int, rels ...string) string {
	t.Helper()
	type thread struct{ Start, Cgroup, Nvcsw, Voluntary, Involuntary uint64 }
	type counts struct{ Voluntary, Involuntary uint64 }
	var threads, retired *ebpf.Map
	for id := ebpf.MapID(0); ; {
		next, err := ebpf.MapGetNextID(id)
		if err != nil {
			break
		}
		id = next
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			continue
		}
		info, err := m.Info()
		switch {
		case err == nil && info.Name == "threads" && info.KeySize == 4 && info.ValueSize == 40:
			threads = m
		case err == nil && info.Name == "retired" && info.KeySize == 8 && info.ValueSize == 16:
			retired = m
		default:
			m.Close()
		}
	}
	if threads == nil || retired == nil {
		return "serve's cswitch maps not found"
	}
	defer threads.Close()
	defer retired.Close()
	root, err := loader.Cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	names := map[uint64]string{}
	for _, rel := range rels {
		var st unix.Stat_t
		if err := unix.Stat(root+rel, &st); err != nil {
			t.Fatal(err)
		}
		names[st.Ino] = rel
		var c counts
		err := retired.Lookup(st.Ino, &c)
		fmt.Fprintf(&b, "\n  cgroup %s (id %d): retired %+v (%v)", rel, st.Ino, c, err)
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		vol, invol, _ := testkit.ThreadSwitches(pid, tid)
		var e thread
		err := threads.Lookup(uint32(tid), &e)
		fmt.Fprintf(&b, "\n  thread %d: /proc %v voluntary, %v involuntary; entry %+v in %q (%v)", tid, vol, invol, e, names[e.Cgroup], err)
	}
	fmt.Fprintf(&b, "\n  events lost %v, tool skipped %v",
		read(t, "bpfkit_events_lost_total", "", `,tool="cswitch"`), read(t, "bpfkit_tool_skipped_total", "", `,tool="cswitch"`))
	return b.String()
}
