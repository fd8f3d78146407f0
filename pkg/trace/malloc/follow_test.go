package malloc

import (
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

// glibcFuncs are glibc's rows (2.36: aligned_alloc and memalign are one
// function), static or not.
var glibcFuncs = []string{"malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign", "aligned_alloc/memalign", "valloc", "pvalloc"}

// What the workload's thread, forked child and exec'd child add (see
// testdata/workload.c): the thread 5 mallocs of 4444 bytes, the forked
// child 7 of 333, the exec'd program its start-up and the pattern.
const (
	threadMallocs, threadBytes = 5, 5 * 4444
	forkMallocs, forkBytes     = 7, 7 * 333
)

// TestFollow: with -f the counts are the workload's own (its thread's
// included), its forked child's and those of the program its other child
// execs; without -f the workload's and its thread's only. The exec'd
// program is the static workload again (the VMs have no other): it is
// stopped at its exec and continued with its allocator already probed.
func TestFollow(t *testing.T) {
	testkit.RequireRoot(t)
	static, err := filepath.Abs("testdata/workload-static")
	if err != nil {
		t.Fatal(err)
	}
	follow(t, setup{bin: static, allocator: "glibc", path: "workload-static", static: true, funcs: glibcFuncs}, static)
}

// TestHostFollow: the dynamic workload (glibc's libc.so.6) execs the
// static one, whose malloc is in its own executable: with -f that file
// gets probes at the exec, before the program's first instruction, and
// all its calls count.
func TestHostFollow(t *testing.T) {
	testkit.RequireRoot(t)
	static, err := filepath.Abs("testdata/workload-static")
	if err != nil {
		t.Fatal(err)
	}
	follow(t, setup{bin: build(t), allocator: "glibc", path: "libc.so.6", funcs: glibcFuncs}, static)
}

// follow runs the workload under s with a thread, a forked child and a
// child that execs static, without -f and with it, and checks the rows.
func follow(t *testing.T, s setup, static string) {
	startup := startupRows(t, static)
	for _, on := range []bool{false, true} {
		w := startWorkload(t, s, "thread", "fork", "exec", static)
		alloc, err := FindPID(w.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		var execs []string
		tr, err := New(alloc, w.cmd.Process.Pid, Config{Follow: on, Exec: func(pid int, a *Allocator, err error) {
			if err != nil {
				t.Errorf("follow the exec of process %d: %v", pid, err)
				return
			}
			execs = append(execs, a.String())
		}})
		if err != nil {
			t.Fatal(err)
		}
		w.step(t) // the pattern, the thread's mallocs, the children
		rows, err := tr.Rows()
		if err != nil {
			t.Fatal(err)
		}
		want := s.expect(false)
		add(want, "malloc", threadMallocs, threadBytes)
		wantExecs := []string(nil)
		if on {
			add(want, "malloc", forkMallocs, forkBytes)
			for _, r := range startup {
				add(want, r.Function, r.Calls, r.Bytes)
			}
			for _, r := range s.expect(false) {
				add(want, r.Function, r.Calls, r.Bytes)
			}
			wantExecs = []string{"glibc (" + static + ", linked statically into the executable)"}
		}
		if !slices.Equal(rows, want) {
			t.Errorf("follow %v: rows\n%v\nwant\n%v", on, rows, want)
		}
		if !slices.Equal(execs, wantExecs) {
			t.Errorf("follow %v: execs followed %q, want %q", on, execs, wantExecs)
		}
		if h := tr.Health(); h.Lost != 0 {
			t.Errorf("lost %d", h.Lost)
		}
		w.step(t) // exit
		if err := w.cmd.Wait(); err != nil {
			t.Fatalf("workload: %v", err)
		}
		tr.Close()
	}
}

// add adds calls and bytes to the row of function fn.
func add(rows []Row, fn string, calls, bytes uint64) {
	rows[slices.IndexFunc(rows, func(r Row) bool { return r.Function == fn })].Calls += calls
	rows[slices.IndexFunc(rows, func(r Row) bool { return r.Function == fn })].Bytes += bytes
}

// startupRows counts the calls the static workload makes before its
// main (static glibc's start-up) in the environment startWorkload gives:
// run with "none", traced from its exec.
func startupRows(t *testing.T, static string) []Row {
	t.Helper()
	alloc, err := FindCommand(static, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(static, "none")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	release, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := New(alloc, cmd.Process.Pid, Config{})
	if err != nil {
		cmd.Process.Kill()
		release()
		cmd.Wait()
		t.Fatal(err)
	}
	defer tr.Close()
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("workload none: %v", err)
	}
	rows, err := tr.Rows()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}
