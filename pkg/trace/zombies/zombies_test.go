package zombies_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
	bktrace "github.com/bpfkit/bpfkit/pkg/trace"
	"github.com/bpfkit/bpfkit/pkg/trace/zombies"
)

func TestMain(m *testing.M) {
	testkit.Register("parent", childParent)
	testkit.Main(m)
}

// The children the parent starts: static programs (testkit), whose names
// differ from the parent's (the test binary's).
const (
	exitComm  = "bk-exit"  // exits with the number it is given
	pauseComm = "bk-pause" // waits until a signal kills it
)

// reaped is what the parent tells the test about one child.
type reaped struct {
	PID int
	// Status is what the reaping wait returned: wait4's status, or
	// waitid's siginfo as the same status.
	Status uint32
	// Comm is the name of the parent's thread that reaped it
	// (/proc/thread-self/comm).
	Comm string
	// Low and High bound the child's time as a zombie, in CLOCK_BOOTTIME
	// (the clock of bpf_ktime_get_boot_ns): from the parent's seeing it a
	// zombie (the return of a waitid with WNOWAIT, which blocks until the
	// child has exited and leaves it a zombie) to the parent's call of
	// the wait that reaps it; from the last moment the child surely had
	// not exited (before its fork, or before the kill that ends it) to
	// that wait's return.
	Low, High time.Duration
	// Start, Forked and Seen (boot time) are the parent's clock before
	// the fork, after it, and once the child was a zombie.
	Start, Forked, Seen time.Duration
	// Reap and Reaped (boot time) are the parent's clock right before its
	// call of the wait that reaps the child and right after that wait
	// returned: the reaping is between the two.
	Reap, Reaped time.Duration
}

// childParent starts children one after the other, keeps each a zombie
// for a while, then reaps it; args: mode, the paths of the exit and pause
// programs, then one "exit:N:MS" (the exit program exits N) or "kill:SIG:MS"
// (the pause program, MS ms after its start, is killed by signal SIG) per
// child, MS ms as a zombie. Mode is how the zombie is reaped: wait4, waitid,
// ignore (SIGCHLD ignored: the kernel reaps children at their exit, never
// zombies) or hold (a report line once it is a zombie, then a line on stdin
// before going on as wait4). A JSON line of each reaped child follows.
func childParent(args []string) int {
	runtime.LockOSThread() // one thread makes the calls: its comm is Comm
	mode, exitProg, pauseProg := args[0], args[1], args[2]
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return 2
	}
	if mode == "ignore" {
		// SIG_IGN (1) for SIGCHLD.
		act := [4]uint64{1}
		if _, _, errno := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(syscall.SIGCHLD), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); errno != 0 {
			return 6
		}
	}
	comm, err := os.ReadFile("/proc/thread-self/comm")
	if err != nil {
		return 3
	}
	out := json.NewEncoder(os.Stdout)
	for _, spec := range args[3:] {
		f := strings.Split(spec, ":")
		if len(f) != 3 {
			return 2
		}
		n, _ := strconv.Atoi(f[1])
		ms, _ := strconv.Atoi(f[2])
		hold := time.Duration(ms) * time.Millisecond
		r := reaped{Comm: strings.TrimSpace(string(comm)), Start: boottime()}
		argv := []string{exitProg, f[1]}
		if f[0] == "kill" {
			argv = []string{pauseProg}
		}
		if r.PID, err = syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{}); err != nil {
			return 3
		}
		r.Forked = boottime()
		low := r.Start
		if f[0] == "kill" {
			// A life as long as its time as a zombie: a zombie time
			// counted from its start would be twice too long.
			for !inPause(r.PID) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(hold)
			low = boottime()
			if err := syscall.Kill(r.PID, syscall.Signal(n)); err != nil {
				return 4
			}
		}
		if mode == "ignore" {
			// wait4 returns ECHILD once the kernel has reaped it.
			if _, err := unix.Wait4(r.PID, nil, 0, nil); err != unix.ECHILD {
				return 5
			}
			out.Encode(r)
			continue
		}
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_PID, r.PID, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
			return 4
		}
		r.Seen = boottime()
		if mode == "hold" {
			out.Encode(r)
			if _, err := in.ReadString('\n'); err != nil {
				return 2
			}
		}
		time.Sleep(hold)
		r.Reap = boottime()
		if mode == "waitid" {
			if err := unix.Waitid(unix.P_PID, r.PID, &info, unix.WEXITED, nil); err != nil {
				return 5
			}
			r.Status = waitStatus(&info)
		} else {
			var ws unix.WaitStatus
			if got, err := unix.Wait4(r.PID, &ws, 0, nil); err != nil || got != r.PID {
				return 5
			}
			r.Status = uint32(ws)
		}
		r.Reaped = boottime()
		r.Low, r.High = r.Reap-r.Seen, r.Reaped-low
		out.Encode(r)
	}
	return 0
}

// waitStatus is the wait status a waitid's siginfo tells: si_code and
// si_status (siginfo_t: si_signo, si_errno, si_code, a pad, si_pid,
// si_uid, si_status).
func waitStatus(info *unix.Siginfo) uint32 {
	b := (*[128]byte)(unsafe.Pointer(info))
	code, status := *(*int32)(unsafe.Pointer(&b[8])), *(*int32)(unsafe.Pointer(&b[24]))
	switch code {
	case 1: // CLD_EXITED
		return uint32(status&0xff) << 8
	case 3: // CLD_DUMPED
		return uint32(status) | 0x80
	default: // CLD_KILLED
		return uint32(status)
	}
}

// inPause reports whether process pid waits in pause(2) (SYS_pause 34 on
// x86-64, the only machine testkit's static programs run on).
func inPause(pid int) bool {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
	return strings.HasPrefix(string(b), "34 ")
}

func boottime() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return time.Duration(ts.Nano())
}

// parent is a running parent (childParent).
type parent struct {
	pid   int
	cmd   interface{ Wait() error }
	stdin io.Writer
	out   *json.Decoder
}

// startParent starts the parent, blocked before its first child.
func startParent(t *testing.T, mode string, children ...string) *parent {
	t.Helper()
	testkit.RequireRoot(t)
	args := append([]string{mode, testkit.ExitProgram(t), testkit.PauseProgram(t)}, children...)
	cmd := testkit.Command(t, "parent", args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testkit.WaitStdinRead(t, cmd.Process.Pid)
	return &parent{pid: cmd.Process.Pid, cmd: cmd, stdin: stdin, out: json.NewDecoder(stdout)}
}

func (p *parent) release(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
}

func (p *parent) report(t *testing.T) reaped {
	t.Helper()
	var r reaped
	if err := p.out.Decode(&r); err != nil {
		t.Fatalf("parent's report: %v", err)
	}
	return r
}

// trace runs the parent in mode with children under one tracer of the
// zombies it reaps for each of overs (Config.Over), and returns each
// tracer's events and the parent's reports.
func trace(t *testing.T, mode string, children []string, overs ...time.Duration) ([][]zombies.Event, []reaped, int) {
	t.Helper()
	p := startParent(t, mode, children...)
	events := make([][]zombies.Event, len(overs))
	var dones []chan error
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i, over := range overs {
		tr, err := zombies.New(zombies.Config{PPID: uint32(p.pid), Over: over})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		done := make(chan error, 1)
		dones = append(dones, done)
		go func() {
			_, err := tr.Run(ctx, loader.StreamOptions{}, func(e *zombies.Event) error {
				c := *e
				c.Comm, c.ParentComm = append([]byte(nil), e.Comm...), append([]byte(nil), e.ParentComm...)
				events[i] = append(events[i], c)
				return nil
			})
			done <- err
		}()
	}
	p.release(t)
	var reps []reaped
	for range children {
		reps = append(reps, p.report(t))
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("parent: %v", err)
	}
	cancel()
	for _, done := range dones {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	return events, reps, p.pid
}

// checkEvent compares an event with what the parent knows of the child
// of spec it reaped: its pid and name, the parent's pid and name, the
// status wait(2) gave, and its time as a zombie between the parent's
// bounds.
func checkEvent(t *testing.T, e zombies.Event, spec string, r reaped, parent int) {
	t.Helper()
	kind, n, _ := strings.Cut(spec, ":")
	n, _, _ = strings.Cut(n, ":")
	comm, want := exitComm, "exit "+n
	if kind == "kill" {
		comm, want = pauseComm, "signal "+n
	}
	ws := syscall.WaitStatus(r.Status)
	if got := fmt.Sprint("exit ", ws.ExitStatus()); ws.Signaled() {
		if got = fmt.Sprint("signal ", int(ws.Signal())); got != want {
			t.Fatalf("%s: wait(2) gave %s, want %s: the workload went wrong", spec, got, want)
		}
	} else if got != want {
		t.Fatalf("%s: wait(2) gave %s, want %s: the workload went wrong", spec, got, want)
	}
	if int(e.PID) != r.PID || int(e.PPID) != parent || string(e.Comm) != comm || string(e.ParentComm) != r.Comm {
		t.Errorf("%s: pid %d (%s) reaped by %d (%s), want %d (%s) reaped by %d (%s)",
			spec, e.PID, e.Comm, e.PPID, e.ParentComm, r.PID, comm, parent, r.Comm)
	}
	if ws.Signaled() && (e.Signal != ws.Signal() || e.ExitCode != 0) || !ws.Signaled() && (e.ExitCode != ws.ExitStatus() || e.Signal != 0) {
		t.Errorf("%s: exit code %d signal %d, wait(2) gave status %#x", spec, e.ExitCode, e.Signal, r.Status)
	}
	low, high := r.Low, r.High
	if testkit.Emulated() {
		// Under TCG the guest's bpf_ktime_get_boot_ns and its vDSO
		// CLOCK_BOOTTIME drift apart (6.1: 146.6 ms in the kernel for
		// 154.4 ms seen by the parent), as schedrecord's slices do: an
		// eighth either way, in emulated VMs only.
		low, high = low-low/8, high+high/8
	}
	if e.Zombie < low || e.Zombie > high {
		t.Errorf("%s: zombie for %v, want from %v to %v", spec, e.Zombie, low, high)
	}
	checkTime(t, e, spec, r)
}

// checkTime: the event's time is the reaping, so within the reaping wait:
// between the parent's clock reads before its call and after its return
// (boot time), put on the wall clock as the tracer does (trace.NewClock).
func checkTime(t *testing.T, e zombies.Event, spec string, r reaped) {
	t.Helper()
	clock := bktrace.NewClock()
	from, to := clock.Time(uint64(r.Reap)), clock.Time(uint64(r.Reaped))
	// The tracer's clock and this one each put CLOCK_BOOTTIME on
	// CLOCK_REALTIME by an offset read between two reads of the wall
	// clock (µs apart, unless preempted 8 times in a row), a second or
	// two apart, during which NTP may slew the wall clock (at most 500
	// ppm): 1 ms either way. Nothing here steps the wall clock.
	slack := time.Millisecond
	if e.Time.Before(from.Add(-slack)) || e.Time.After(to.Add(slack)) {
		t.Errorf("%s: reaped at %v, %v from the parent's call of the reaping wait; want from 0 to its return %v later (± %v)",
			spec, e.Time.Format(time.StampMicro), e.Time.Sub(from), to.Sub(from), slack)
	}
}

// TestReaped: each way of reaping reports each zombie exactly once, with
// its pid and name, its reaper's, the status wait(2) returned and a zombie
// time within what the parent measured. Every child is first waited for
// by a waitid with WNOWAIT, which must not count as its reaping. Hooks
// driven: sched_process_exit (every case), sys_exit_wait4 (wait4),
// sys_enter/exit_waitid (every case), sched_process_free (every case;
// ignore: freed with no wait).
func TestReaped(t *testing.T) {
	for mode, children := range map[string][]string{
		"wait4":  {"exit:7:100", "kill:15:100", "exit:0:100"}, // SIGTERM
		"waitid": {"exit:200:100", "kill:9:100"},              // SIGKILL
	} {
		t.Run(mode, func(t *testing.T) {
			events, reps, parent := trace(t, mode, children, 0)
			if len(events[0]) != len(children) {
				t.Fatalf("%d events, want %d: %+v", len(events[0]), len(children), events[0])
			}
			for i, e := range events[0] {
				if reps[i].Low < 100*time.Millisecond { // the workload itself went wrong
					t.Fatalf("the parent held its zombie %d for %v only", reps[i].PID, reps[i].Low)
				}
				checkEvent(t, e, children[i], reps[i], parent)
			}
		})
	}
	t.Run("ignore", func(t *testing.T) {
		if events, _, _ := trace(t, "ignore", []string{"exit:3:0"}, 0); len(events[0]) != 0 {
			t.Errorf("a child reaped by the kernel at once was reported: %+v", events[0])
		}
	})
}

// TestMany: a parent that makes many children zombies and reaps them one
// after the other, in each way of reaping, is reported exactly those
// children, each once, each as checkEvent wants. Enough of them (ten per
// CPU) that one CPU reaps ten or more, whichever CPUs the parent runs on.
func TestMany(t *testing.T) {
	n := max(20, 10*runtime.NumCPU())
	var children []string
	for i := range n {
		if i%5 == 4 {
			children = append(children, "kill:9:0") // SIGKILL
		} else {
			children = append(children, fmt.Sprintf("exit:%d:0", i%256))
		}
	}
	for _, mode := range []string{"wait4", "waitid"} {
		t.Run(mode, func(t *testing.T) {
			events, reps, parent := trace(t, mode, children, 0)
			child := map[int]int{} // pid: index in children
			for i, r := range reps {
				child[r.PID] = i
			}
			seen := map[int]int{}
			for _, e := range events[0] {
				i, ok := child[int(e.PID)]
				if !ok {
					t.Errorf("reported %s, not a child the parent reaped", show(&e))
					continue
				}
				if seen[i]++; seen[i] == 1 {
					checkEvent(t, e, children[i], reps[i], parent)
				}
			}
			var missing, twice []int
			for i, r := range reps {
				switch seen[i] {
				case 0:
					missing = append(missing, r.PID)
				case 1:
				default:
					twice = append(twice, r.PID)
				}
			}
			if len(events[0]) != n || len(missing) > 0 || len(twice) > 0 {
				t.Errorf("%d events for the %d zombies the parent reaped: not reported %v, reported more than once %v", len(events[0]), n, missing, twice)
			}
		})
	}
}

// TestOver: --over reports exactly the zombies held at least that long.
// Four children held about 50, 96, 104 and 150 ms, under two tracers, one
// with --over 100ms: it reports exactly those of the other's that were
// zombies for 100 ms or more, each as the other does.
func TestOver(t *testing.T) {
	const over = 100 * time.Millisecond
	children := []string{"exit:1:50", "exit:2:96", "exit:3:104", "exit:4:150"}
	// The workload's own sleeps decide the zombie times: under TCG a
	// late wake-up can leave no child below or none above --over (seen on
	// 6.12 in CI: the 50 ms child reaped after 126 ms). Then nothing
	// tested the filter on that side, and the test runs the workload again,
	// at most three times; every run's events are checked in full.
	for attempt := 1; ; attempt++ {
		below, above := overOnce(t, children, over)
		if below > 0 && above > 0 {
			return
		}
		if attempt == 3 {
			t.Fatalf("%d runs of the workload: none left a zombie well below or none well above %v", attempt, over)
		}
	}
}

// overOnce runs TestOver's workload once under two tracers, without and
// with --over, checks both, and returns how many zombies were well below
// and well above over.
func overOnce(t *testing.T, children []string, over time.Duration) (below, above int) {
	t.Helper()
	events, reps, parent := trace(t, "wait4", children, 0, over)
	all, filtered := events[0], events[1]
	if len(all) != len(children) {
		t.Fatalf("%d events without --over, want %d: %+v", len(all), len(children), all)
	}
	for i, e := range all {
		checkEvent(t, e, children[i], reps[i], parent)
	}
	// Each event of the --over tracer is checked as the other's are,
	// against the parent's own bounds (checkEvent). Only whether a zombie
	// time right at --over is reported depends on the two tracers' clock
	// reads, apart by one program's run (they run one after the other at
	// each hook) and what interrupts the kernel takes between the two:
	// seen 45 µs natively, 1 ms allowed; under TCG the host may also
	// deschedule the vCPU between them (seen 5.8 ms in CI on 6.1 under
	// load): 5 ms there, for that decision only. The children's times
	// are 4 ms or more from --over.
	band := time.Millisecond
	if testkit.Emulated() {
		band = 5 * time.Millisecond
	}
	for i, e := range all {
		var got *zombies.Event
		for j := range filtered {
			if filtered[j].PID == e.PID {
				got = &filtered[j]
			}
		}
		if got != nil {
			checkEvent(t, *got, children[i], reps[i], parent)
		}
		switch {
		case got != nil && got.Zombie < over:
			t.Errorf("--over %v reported %s; the unfiltered tracer %s", over, show(got), show(&e))
		case got == nil && e.Zombie >= over+band:
			t.Errorf("--over %v left out pid %d, a zombie for %v", over, e.PID, e.Zombie)
		}
		if e.Zombie < over-band {
			below++
		} else if e.Zombie >= over+band {
			above++
		}
	}
	if len(filtered) > len(all) {
		t.Errorf("--over %v reported %d, more than the %d zombies: %+v", over, len(filtered), len(all), filtered)
	}
	if below == 0 || above == 0 { // the workload itself went wrong
		t.Logf("zombie times %v: none well below or none well above %v", all, over)
	}
	return below, above
}

func show(e *zombies.Event) string {
	return fmt.Sprintf("pid %d (%s) reaped by %d (%s), exit code %d, signal %d, a zombie for %v",
		e.PID, e.Comm, e.PPID, e.ParentComm, e.ExitCode, e.Signal, e.Zombie)
}

// TestNow: a zombie that exists is listed once, with its name, its parent
// and its parent's name, and its age since its start as /proc gives it
// (in clock ticks, 10 ms).
func TestNow(t *testing.T) {
	p := startParent(t, "hold", "exit:7:0")
	p.release(t)
	r := p.report(t)
	from := boottime()
	now, err := zombies.Now()
	to := boottime()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, z := range now {
		if int(z.PID) != r.PID {
			continue
		}
		found++
		// The child started between Start and Forked; its start time is
		// kept in ticks, rounded down.
		lo, hi := from-r.Forked, to-r.Start+10*time.Millisecond
		if int(z.PPID) != p.pid || z.Comm != exitComm || z.ParentComm != r.Comm || z.Age < lo || z.Age >= hi {
			t.Errorf("zombie %+v, want parent %d (%s), name %s, age from %v to %v", z, p.pid, r.Comm, exitComm, lo, hi)
		}
	}
	if found != 1 {
		t.Errorf("zombie %d listed %d times in %+v", r.PID, found, now)
	}
	p.release(t)
	p.report(t)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("parent: %v", err)
	}
}
