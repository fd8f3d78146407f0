package syscount_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/syscount"
)

func TestMain(m *testing.M) {
	testkit.Register("calls", childCalls)
	testkit.Register("table", childTable)
	testkit.Main(m)
}

// childTable loads syscount and says where its names came from: "table",
// or why not.
func childTable([]string) int {
	tr, err := syscount.New(syscount.Config{})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer tr.Close()
	if err := tr.TableError(); err != nil {
		fmt.Println(err)
		return 0
	}
	fmt.Println("table")
	return 0
}

// The workload: syscalls the Go runtime itself never makes, each a known
// number of times, once the parent says go.
const (
	nGetppid = 1000 // succeed
	nMkdirat = 300  // fail: EEXIST
	nFchdir  = 70   // fail: EBADF
)

// childCalls makes the calls. With args[1] = T > 1 the getppid calls are
// spread over T threads at once (nGetppid/T each, each goroutine locked to
// its own thread while all are held at a barrier, so the T threads are
// distinct and at most one of them is the process's main thread); the
// thread ids are written to stdout, one a line.
func childCalls(args []string) int {
	threads := 1
	if len(args) > 1 {
		threads, _ = strconv.Atoi(args[1])
	}
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return 2
	}
	tids := make([]int, threads)
	var locked, done sync.WaitGroup
	locked.Add(threads)
	done.Add(threads)
	for i := range threads {
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			tids[i] = unix.Gettid()
			locked.Done()
			locked.Wait()
			for range nGetppid / threads {
				unix.Getppid()
			}
		}()
	}
	done.Wait()
	for _, tid := range tids {
		fmt.Println(tid)
	}
	for range nMkdirat {
		if err := unix.Mkdirat(unix.AT_FDCWD, args[0], 0o755); err != unix.EEXIST {
			return 3
		}
	}
	for range nFchdir {
		if err := unix.Fchdir(-1); err != unix.EBADF {
			return 4
		}
	}
	return 0
}

// run starts the child on threads threads, attaches a tracer configured
// by cfg for it, lets the child do its calls and returns the rows counted,
// the child's pid, how long it took from "go" to its exit and the ids of
// the threads that made its getppid calls. A second copy of the child, left
// out by the pid filter, makes the same calls at the same time: none of
// them may be counted.
func run(t *testing.T, cfg syscount.Config, threads int) ([]syscount.Row, int, time.Duration, []int) {
	t.Helper()
	testkit.RequireRoot(t)
	type child struct {
		cmd   *exec.Cmd
		stdin io.Writer
		out   bytes.Buffer
	}
	start := func() *child {
		c := &child{cmd: testkit.Command(t, "calls", t.TempDir(), strconv.Itoa(threads))}
		c.cmd.Stdout = &c.out
		var err error
		if c.stdin, err = c.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.cmd.Process.Kill(); _ = c.cmd.Wait() })
		testkit.WaitStdinRead(t, c.cmd.Process.Pid)
		return c
	}
	target, other := start(), start()
	cfg.Filter.PID = uint32(target.cmd.Process.Pid)
	tr, err := syscount.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	began := time.Now()
	for _, c := range []*child{target, other} {
		if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	if err := target.cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	took := time.Since(began)
	if err := other.cmd.Wait(); err != nil {
		t.Fatalf("other child: %v", err)
	}
	rows, err := tr.Delta()
	if err != nil {
		t.Fatal(err)
	}
	if tr.Health().Lost != 0 {
		t.Errorf("%d calls not counted: table full", tr.Health().Lost)
	}
	var tids []int
	for _, f := range strings.Fields(target.out.String()) {
		tid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("child said %q, not a thread id", target.out.String())
		}
		tids = append(tids, tid)
	}
	if len(tids) != threads {
		t.Fatalf("child ran %d threads %v, want %d", len(tids), tids, threads)
	}
	return rows, target.cmd.Process.Pid, took, tids
}

func byName(rows []syscount.Row) map[string]syscount.Row {
	m := map[string]syscount.Row{}
	for _, r := range rows {
		m[r.Name] = r
	}
	return m
}

// TestCounts: exact calls and errors per syscall, the names the running
// kernel gives their numbers, and time only with latency. Hooks driven:
// raw_syscalls:sys_enter (latency only) and sys_exit, and the copies of
// syscall_name on syscalls:sys_enter_getppid, _mkdirat, _fchdir.
func TestCounts(t *testing.T) {
	for _, latency := range []bool{false, true} {
		t.Run(fmt.Sprintf("latency=%v", latency), func(t *testing.T) {
			rows, _, took, _ := run(t, syscount.Config{Latency: latency}, 1)
			got := byName(rows)
			for _, w := range []struct {
				name   string
				nr     uint32
				n, err uint64
			}{
				{"getppid", unix.SYS_GETPPID, nGetppid, 0},
				{"mkdirat", unix.SYS_MKDIRAT, nMkdirat, nMkdirat},
				{"fchdir", unix.SYS_FCHDIR, nFchdir, nFchdir},
			} {
				r, ok := got[w.name]
				if !ok {
					t.Errorf("no row for %s in %+v", w.name, rows)
					continue
				}
				if r.Nr != w.nr || r.Count != w.n || r.Errors != w.err {
					t.Errorf("%s: nr %d, %d calls, %d errors; want nr %d, %d, %d", w.name, r.Nr, r.Count, r.Errors, w.nr, w.n, w.err)
				}
				switch {
				case !latency && r.TotalNS != 0:
					t.Errorf("%s: time %d without latency", w.name, r.TotalNS)
				case latency && (r.TotalNS == 0 || r.Time() > took):
					t.Errorf("%s: time %v, the workload took %v", w.name, r.Time(), took)
				}
			}
			for _, r := range rows {
				if _, err := strconv.Atoi(r.Name); err == nil || r.Name == "syscall_"+strconv.Itoa(int(r.Nr)) {
					t.Errorf("syscall %d has no name", r.Nr)
				}
			}
		})
	}
}

// TestFilters: -x counts only failures, -e one errno, -P per process: one
// row per syscall for a process whose getppid calls are spread over four
// threads, keyed by its pid, with the sum of its threads' calls.
func TestFilters(t *testing.T) {
	rows, _, _, _ := run(t, syscount.Config{FailedOnly: true}, 1)
	got := byName(rows)
	if _, ok := got["getppid"]; ok || got["mkdirat"].Count != nMkdirat || got["fchdir"].Count != nFchdir {
		t.Errorf("failed only: %+v", rows)
	}
	rows, _, _, _ = run(t, syscount.Config{Errno: unix.EEXIST}, 1)
	if len(rows) != 1 || rows[0].Name != "mkdirat" || rows[0].Count != nMkdirat || rows[0].Errors != nMkdirat {
		t.Errorf("EEXIST only: %+v", rows)
	}
	const threads = 4
	rows, pid, _, tids := run(t, syscount.Config{PerProcess: true}, threads)
	// Four distinct threads: at least three are not the main thread.
	if distinct := slices.Compact(slices.Sorted(slices.Values(tids))); len(distinct) != threads {
		t.Fatalf("getppid threads %v, want %d distinct", tids, threads)
	}
	seen := map[uint32]int{}
	for _, r := range rows {
		if r.PID != uint32(pid) {
			t.Errorf("per process: row %+v, want pid %d (threads %v)", r, pid, tids)
		}
		seen[r.Nr]++
	}
	for nr, n := range seen {
		if n != 1 {
			t.Errorf("per process: %d rows for syscall %d, want 1: %+v", n, nr, rows)
		}
	}
	if r := byName(rows)["getppid"]; r.PID != uint32(pid) || r.Count != nGetppid || r.Comm == "" {
		t.Errorf("per process: %+v, want pid %d and %d calls from threads %v", r, pid, nGetppid, tids)
	}
}

// TestKernelTable: names are read from the kernel's own table on every
// kernel of the matrix, so no namer is loaded; numbers the x86-64 ABI
// fixes carry their names; Close leaves no perf event open.
func TestKernelTable(t *testing.T) {
	testkit.RequireRoot(t)
	pid := os.Getpid()
	_, kinds := testkit.LinkedPrograms(t, pid)
	perfEvents := kinds["[perf_event]"]
	tr, err := syscount.New(syscount.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.TableError(); err != nil {
		t.Errorf("names not read from the kernel's table: %v", err)
	}
	if prog, _ := tr.Namer("getppid"); prog != nil {
		t.Error("a namer is loaded for getppid")
	}
	for nr, want := range map[uint32]string{
		unix.SYS_READ: "read", unix.SYS_WRITE: "write", unix.SYS_OPENAT: "openat",
		unix.SYS_GETPPID: "getppid", unix.SYS_MKDIRAT: "mkdirat", unix.SYS_FCHDIR: "fchdir",
		unix.SYS_EXIT_GROUP: "exit_group", unix.SYS_CLONE3: "clone3",
	} {
		if got := tr.Name(nr); got != want {
			t.Errorf("syscall %d is named %q, want %q", nr, got, want)
		}
	}
	if err := tr.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, kinds := testkit.LinkedPrograms(t, pid); kinds["[perf_event]"] != perfEvents || kinds["bpf_link"] != 0 {
		t.Errorf("closed, yet %d perf events (%d before) and %d BPF links open", kinds["[perf_event]"], perfEvents, kinds["bpf_link"])
	}

	// A service with the capabilities docs/privileges.md gives (no root,
	// no CAP_SYSLOG) reads the table too.
	cmd := testkit.Command(t, "table")
	testkit.AsUser(t, cmd, 65534, 65534)
	caps := "CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH"
	testkit.WithAmbientCaps(cmd, unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_DAC_READ_SEARCH)
	if !testkit.KernelAtLeast(5, 11) {
		caps += ", CAP_SYS_RESOURCE"
		testkit.WithAmbientCaps(cmd, unix.CAP_SYS_RESOURCE) // maps charged to RLIMIT_MEMLOCK
	}
	if restricted, err := loader.PerfEventsRestricted(); err != nil {
		t.Fatal(err)
	} else if restricted {
		// Debian's kernels (the VMs') restrict every perf event to
		// CAP_SYS_ADMIN at this level (docs/privileges.md).
		caps += ", CAP_SYS_ADMIN"
		testkit.WithAmbientCaps(cmd, unix.CAP_SYS_ADMIN)
	}
	out, err := cmd.Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != "table" {
		t.Errorf("as nobody with %s: %q (%v), want names from the table", caps, got, err)
	}
}

// TestNamersDetached: with the namers (NamersEnv: the fallback where the
// kernel's table cannot be read), the copy of syscall_name on
// sys_enter_getppid is detached once getppid is named, as the kernel
// shows: it runs no more (its run count) and, from 5.15 on (a perf event
// has a BPF link there), no link of this process attaches it; getppid
// keeps its name and every call is counted, before and after; every
// syscall the namers named has the same name in the kernel's table; Close
// leaves no perf event open.
func TestNamersDetached(t *testing.T) {
	testkit.RequireRoot(t)
	testkit.EnableBPFStats(t)
	t.Setenv(syscount.NamersEnv, "1")
	pid := os.Getpid()
	_, kinds := testkit.LinkedPrograms(t, pid)
	perfEvents := kinds["[perf_event]"]
	// The Go runtime never calls getppid: this process's calls are ours.
	tr, err := syscount.New(syscount.Config{Filter: loader.TaskFilter{PID: uint32(pid)}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if tr != nil {
			tr.Close()
		}
	}()
	prog, _ := tr.Namer("getppid")
	if prog == nil {
		t.Fatal("no program names getppid")
	}
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	runs := func() uint64 {
		st, err := prog.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return st.RunCount
	}
	links, _ := testkit.LinkedPrograms(t, pid)
	before := runs()
	// Names only grow: unnamed now, getppid was unnamed when the links
	// and the run count were read, its namer attached then, and the run
	// that names it comes after (another process may have called getppid
	// since New, and named it).
	unnamed := tr.Name(unix.SYS_GETPPID) != "getppid"
	if unnamed && testkit.KernelAtLeast(5, 15) && links[id] != 1 {
		t.Errorf("getppid unnamed, and %d links attach its namer (program %d), want 1", links[id], id)
	}
	const n = 1000
	for range n {
		unix.Getppid()
	}
	if got := tr.Name(unix.SYS_GETPPID); got != "getppid" {
		t.Fatalf("after %d calls getppid is named %q", n, got)
	}
	if after := runs(); unnamed && after == before {
		t.Errorf("getppid was unnamed, yet its namer did not run in %d calls", n)
	}
	// A detach waits for the kernel; slow in an emulated VM.
	if !testkit.WaitFor(2*time.Minute, func() bool { _, attached := tr.Namer("getppid"); return !attached }) {
		t.Fatal("getppid's namer still attached 2 minutes after its first call")
	}
	if links, _ := testkit.LinkedPrograms(t, pid); links[id] != 0 {
		t.Errorf("getppid's namer (program %d) detached, but %d links still attach it", id, links[id])
	}
	before = runs()
	for range n {
		unix.Getppid()
	}
	if after := runs(); after != before {
		t.Errorf("getppid's namer detached, but it ran %d times in %d calls", after-before, n)
	}
	rows, err := tr.Delta()
	if err != nil {
		t.Fatal(err)
	}
	if r := byName(rows)["getppid"]; r.Nr != unix.SYS_GETPPID || r.Count != 2*n {
		t.Errorf("getppid: %+v, want nr %d and %d calls (rows %+v)", r, unix.SYS_GETPPID, 2*n, rows)
	}

	t.Setenv(syscount.NamersEnv, "")
	table, err := syscount.New(syscount.Config{Filter: loader.TaskFilter{PID: uint32(pid)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := table.TableError(); err != nil {
		t.Errorf("names not read from the kernel's table: %v", err)
	}
	compared := 0
	for nr := range uint32(1024) {
		if name := tr.Name(nr); !strings.HasPrefix(name, "syscall_") {
			compared++
			if got := table.Name(nr); got != name {
				t.Errorf("syscall %d: the namers named it %q, the kernel's table %q", nr, name, got)
			}
		}
	}
	if err := table.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	t.Logf("%d names learnt by the namers, the same in the kernel's table", compared)

	if err := tr.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	tr = nil
	if _, kinds := testkit.LinkedPrograms(t, pid); kinds["[perf_event]"] != perfEvents || kinds["bpf_link"] != 0 {
		t.Errorf("closed, yet %d perf events (%d before) and %d BPF links open", kinds["[perf_event]"], perfEvents, kinds["bpf_link"])
	}
}

func TestParseErrno(t *testing.T) {
	for in, want := range map[string]unix.Errno{"ENOENT": unix.ENOENT, "enoent": unix.ENOENT, "2": unix.ENOENT, "EEXIST": unix.EEXIST} {
		if got, err := syscount.ParseErrno(in); err != nil || got != want {
			t.Errorf("%q: %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0", "4096", "ENOPE", "-1"} {
		if _, err := syscount.ParseErrno(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
