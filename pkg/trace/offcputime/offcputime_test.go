package offcputime

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	testkit.Register("offcpu-stacks", stacksWorkload)
	testkit.Main(m)
}

// TestNanosleep: a worker sleeping 50 × 20 ms with nanosleep(2) is off CPU
// about 1 s under a kernel stack with the sleep path and a user stack with
// the worker's function. The only hook, sched_switch, ends each period
// (the switch-in) and starts the next (the switch-out).
//
// Every off-CPU period of the worker is counted, and only those: the
// counts add up exactly to its context switches in /proc. The worker was
// blocked in read(2) on its stdin when the tracers attached, so the
// switch-in that Release causes ends a period that started unseen, and its
// last switch-out (blocking in read(2) again) starts one that has not
// ended: one switch less than /proc counts. Each switch of the worker is
// voluntary (it blocked: state S or D) or involuntary (preempted: R), so
// the tracers of those states split the count the same way, exactly. On
// 6.12+ a few switch-ins may go unseen (testkit.UntracedSwitchIns).
func TestNanosleep(t *testing.T) {
	testkit.RequireRoot(t)
	w := testkit.Nanosleep(t, 50, 20*time.Millisecond)
	tracer := func(states States) *Tracer {
		tr, err := New(Config{Filter: loader.TaskFilter{TID: uint32(w.TID)}, States: states})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	tr, blocked, preempted := tracer(0), tracer(Sleeping|Uninterruptible), tracer(Preempted)
	v0, i0 := w.CtxSwitches(t)
	start := time.Now()
	w.Release(t)
	w.Wait(t)
	elapsed := time.Since(start)
	v1, i1 := w.CtxSwitches(t)
	count := func(tr *Tracer) (n uint64) {
		entries, err := tr.Read()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			n += e.Count
		}
		if h := tr.Health(); h.Lost != 0 || h.Missed != 0 {
			t.Errorf("lost %d off-CPU periods, %d runs skipped", h.Lost, h.Missed)
		}
		return n
	}
	vol, invol := v1-v0, i1-i0
	t.Logf("/proc: %d voluntary, %d involuntary switches", vol, invol)
	// A switch-in the programs do not see (6.12+, testkit.UntracedSwitchIns)
	// ends no period: the switch-out after it starts one over it.
	untraced := testkit.UntracedSwitchIns(vol + invol)
	if n := count(tr); n > vol+invol-1 || n+untraced < vol+invol-1 {
		t.Errorf("%d off-CPU periods, want %d (/proc: %d voluntary and %d involuntary switches, less the last; %d switch-ins may go unseen)", n, vol+invol-1, vol, invol, untraced)
	}
	if n := count(blocked); n > vol-1 || n+untraced < vol-1 {
		t.Errorf("--state S,D: %d off-CPU periods, want %d (/proc: %d voluntary switches, less the last; %d switch-ins may go unseen)", n, vol-1, vol, untraced)
	}
	if n := count(preempted); n > invol || n+untraced < invol {
		t.Errorf("--state R: %d off-CPU periods, want %d (/proc: involuntary switches; %d switch-ins may go unseen)", n, invol, untraced)
	}

	entries, err := tr.Read()
	if err != nil {
		t.Fatal(err)
	}
	// The sleeps block in schedule() under do_nanosleep: one entry. The
	// worker can also be preempted inside do_nanosleep, at a preemption
	// point (_cond_resched on the VMs' PREEMPT_VOLUNTARY kernels, seen on
	// 5.10) or from an interrupt: other entries under the sleep path,
	// which are no sleeps and count among the involuntary switches.
	var sleep Entry
	var preemptedInSleep uint64
	var text, folded []byte
	for _, e := range entries {
		if e.TID != uint32(w.TID) || e.PID != uint32(w.PID) {
			t.Errorf("entry of tid %d pid %d: filtered on tid %d", e.TID, e.PID, w.TID)
		}
		text = AppendText(text, &e, true, true)
		folded = AppendFolded(folded, &e, true, true)
		if !slices.Contains(e.Kernel, "do_nanosleep") && !slices.Contains(e.Kernel, "hrtimer_nanosleep") {
			continue
		}
		if !slices.Contains(e.Kernel, "schedule") {
			preemptedInSleep += e.Count
			continue
		}
		if sleep.Count != 0 {
			t.Errorf("two entries blocked in schedule() under the sleep path:\n%s", text)
		}
		sleep = e
	}
	t.Logf("\n%s", text)
	if sleep.Count == 0 {
		t.Fatalf("no entry blocked in schedule() under do_nanosleep or hrtimer_nanosleep")
	}
	if preemptedInSleep > invol {
		t.Errorf("%d periods preempted inside the sleep path, more than the %d involuntary switches", preemptedInSleep, invol)
	}
	// A sleep blocks at most once (a sleep whose timer fires before the
	// task reaches schedule() does not block at all), and a task
	// preempted on its way into the sleep is switched out a second time
	// under the same stacks: at most 50 blocked, plus the preemptions.
	if sleep.Count > 50+invol {
		t.Errorf("%d periods in nanosleep for 50 sleeps and %d preemptions", sleep.Count, invol)
	}
	// Each blocked sleep lasts at least 20 ms from just before the
	// switch-out (the timer is armed first). How late a busy machine
	// wakes the worker is unbounded (2.2 s seen here under load), but the
	// periods of one thread do not overlap: they fit in the run's time.
	if min := time.Duration(min(sleep.Count, 50)) * 19800 * time.Microsecond; sleep.Total < min || sleep.Total > elapsed {
		t.Errorf("off CPU %s in nanosleep, want at least %s and at most the run's %s", sleep.Total, min, elapsed)
	}
	if !slices.ContainsFunc(sleep.User, func(f string) bool { return strings.HasSuffix(f, "testkit.nanosleep") }) {
		t.Errorf("user stack does not show the worker's function: %q", sleep.User)
	}
	if sleep.Comm != testkit.NanosleepComm {
		t.Errorf("comm %q", sleep.Comm)
	}

	// Folded output parses: comm;frames... count, and sums to the totals.
	var sum time.Duration
	sc := bufio.NewScanner(bytes.NewReader(folded))
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		n, err := strconv.ParseInt(line[i+1:], 10, 64)
		if i < 0 || err != nil {
			t.Fatalf("folded line %q", line)
		}
		frames := strings.Split(line[:i], ";")
		if frames[0] != testkit.NanosleepComm || slices.Contains(frames, "") {
			t.Errorf("folded line %q", line)
		}
		sum += time.Duration(n) * time.Microsecond
	}
	var want time.Duration
	for _, e := range entries {
		want += e.Total.Truncate(time.Microsecond)
	}
	if sum != want {
		t.Errorf("folded lines add up to %s, totals to %s", sum, want)
	}
}

func TestParseStates(t *testing.T) {
	if s, err := ParseStates("D"); err != nil || s != Uninterruptible {
		t.Errorf("D: %v %v", s, err)
	}
	if s, err := ParseStates("s,R"); err != nil || s != Sleeping|Preempted {
		t.Errorf("s,R: %v %v", s, err)
	}
	if _, err := ParseStates("Z"); err == nil {
		t.Error("Z accepted")
	}
}

// stacksWorkload waits for a byte on stdin, then blocks 2048 times, each
// time from a stack of its own (stacksStep), says "done" and waits for
// another byte (its stacks are symbolized while it lives). Each block is a
// read(2) of a pipe that a helper writes one byte to only once it sees the
// reader blocked in that read (/proc/self/task/TID/syscall): every one of
// the 2048 reads blocks, however late the thread gets there.
func stacksWorkload([]string) int {
	runtime.LockOSThread()
	var b [1]byte
	if _, err := os.Stdin.Read(b[:]); err != nil {
		return 2
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil { // blocking: a raw read blocks the thread here
		return 2
	}
	stacksPipe = p[0]
	blocked := fmt.Sprintf("%d 0x%x ", unix.SYS_READ, p[0])
	task := fmt.Sprintf("/proc/self/task/%d/", unix.Gettid())
	// reading: asleep (S) in read(2) of the pipe. Woken but not yet run
	// again, the reader is still in that read, but R.
	reading := func() (bool, error) {
		stat, err := os.ReadFile(task + "stat")
		if err != nil {
			return false, err
		}
		if i := strings.LastIndex(string(stat), ") "); i < 0 || !strings.HasPrefix(string(stat[i+2:]), "S") {
			return false, nil
		}
		sc, err := os.ReadFile(task + "syscall")
		return strings.HasPrefix(string(sc), blocked), err
	}
	done := make(chan error, 1)
	go func() {
		for range 1 << stacksLevels {
			for {
				ok, err := reading()
				if err != nil {
					done <- err
					return
				}
				if ok {
					break
				}
			}
			if _, err := unix.Write(p[1], []byte{1}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := range uint(1) << stacksLevels {
		stacksStep(i, 0)
	}
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("done")
	if _, err := os.Stdin.Read(b[:]); err != nil {
		return 2
	}
	return 0
}

const stacksLevels = 11

// stacksPipe is the read end stacksStep blocks on.
var stacksPipe int

// stacksStep: call i goes down stacksLevels levels, through stacksA or
// stacksB as bit level of i says, and blocks at the bottom.
//
//go:noinline
func stacksStep(i uint, level int) {
	if level == stacksLevels {
		var b [1]byte
		unix.Read(stacksPipe, b[:])
		return
	}
	if i>>level&1 == 1 {
		stacksB(i, level+1)
	} else {
		stacksA(i, level+1)
	}
}

//go:noinline
func stacksA(i uint, level int) { stacksStep(i, level) }

//go:noinline
func stacksB(i uint, level int) { stacksStep(i, level) }

// TestStacksApart: the workload blocks 2048 times, each time from a user
// stack of its own: no user stack is lost, and the entries hold the 2048
// user stacks through the bottom stacksStep, each with the path of 11
// stacksA and stacksB frames that leads there. (A stack-trace map,
// BPF_MAP_TYPE_STACK_TRACE, keeps one stack per bucket of its hash: of
// 16384 buckets, about 120 of these would find theirs taken, each an entry
// with its user stack lost; seen: 109 and 128 lost.) Fewer only on 6.12+,
// by switch-ins the kernel does not show (testkit.UntracedSwitchIns).
func TestStacksApart(t *testing.T) {
	testkit.RequireRoot(t)
	cmd := testkit.Command(t, "offcpu-stacks")
	in, out := testkit.StartHeld(t, cmd)
	tr, err := New(Config{Filter: loader.TaskFilter{PID: uint32(cmd.Process.Pid)}, UserOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := in.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	if line, err := out.ReadString('\n'); err != nil || line != "done\n" {
		t.Fatalf("workload said %q: %v", line, err)
	}
	entries, err := tr.Read()
	if err != nil {
		t.Fatal(err)
	}
	const n = 1 << stacksLevels
	stacks := map[string]bool{}
	for _, e := range entries {
		if e.UserLost {
			t.Errorf("a user stack lost: %+v", e)
		}
		// From the first stacksStep out, a full path only: a thread
		// preempted on its way down (user code) is switched out with a
		// shorter one.
		i := slices.IndexFunc(e.User, func(f string) bool { return strings.HasSuffix(f, ".stacksStep") })
		if i < 0 {
			continue
		}
		path := e.User[i:]
		levels := 0
		for _, f := range path {
			if strings.HasSuffix(f, ".stacksA") || strings.HasSuffix(f, ".stacksB") {
				levels++
			}
		}
		if levels == stacksLevels {
			stacks[strings.Join(path, ";")] = true
		}
	}
	untraced := testkit.UntracedSwitchIns(n)
	if len(stacks) > n || uint64(len(stacks))+untraced < n {
		t.Errorf("%d user stacks through all %d levels of stacksStep, want %d (%d switch-ins may go unseen)", len(stacks), stacksLevels, n, untraced)
	}
	if len(stacks) < n {
		t.Logf("%d user stacks through all levels of stacksStep, of %d", len(stacks), n)
	}
}
