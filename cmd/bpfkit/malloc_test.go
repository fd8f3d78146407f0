package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

// mallocRows runs bpfkit malloc -o json -- the static workload with args
// and returns calls and bytes by function.
func mallocRows(t *testing.T, args ...string) map[string][2]uint64 {
	t.Helper()
	rows, _ := mallocRun(t, nil, args...)
	return rows
}

// staticWorkload is malloc's committed static workload.
func staticWorkload(t *testing.T) string {
	bin, err := filepath.Abs("../../pkg/trace/malloc/testdata/workload-static")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// mallocRun runs bpfkit malloc with flags -o json -- the static workload
// with args and returns calls and bytes by function, and stderr.
func mallocRun(t *testing.T, flags []string, args ...string) (map[string][2]uint64, string) {
	t.Helper()
	bin := staticWorkload(t)
	cmd := append(append([]string{"malloc"}, flags...), "-o", "json", "--", bin)
	stdout, stderr, code := runBpfkit(t, bpfkit(t, append(cmd, args...)...))
	if code != 0 {
		t.Fatalf("bpfkit malloc: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "allocator glibc ("+bin+", linked statically into the executable)") {
		t.Errorf("stderr does not name the allocator:\n%s", stderr)
	}
	rows := map[string][2]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if line == "done" { // the workload's own output
			continue
		}
		var r struct {
			Function, Allocator string
			Calls, Bytes        uint64
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if r.Allocator != "glibc" {
			t.Errorf("%s: allocator %q, want glibc", r.Function, r.Allocator)
		}
		rows[r.Function] = [2]uint64{r.Calls, r.Bytes}
	}
	return rows, stderr
}

// TestHostMallocCommand: bpfkit malloc -- COMMAND traces the command from
// its first instruction. Static glibc allocates a few blocks while it
// starts (the same in every run): the run with the pattern less the run
// without it is the pattern, exactly. (Host only: the static workload is
// another package's testdata, not shipped into the VMs, where
// pkg/trace/malloc's TestStatic runs it.)
func TestHostMallocCommand(t *testing.T) {
	testkit.RequireRoot(t)
	base := mallocRows(t, "none")
	full := mallocRows(t)
	checkMore(t, full, base, mallocPattern())
}

// mallocPattern is what the workload's pattern adds, by row.
func mallocPattern() map[string][2]uint64 {
	return map[string][2]uint64{
		"malloc":                 {16, 16000},
		"calloc":                 {8, 8000},
		"realloc":                {4, 12000},
		"reallocarray":           {2, 10000},
		"free":                   {16, 0},
		"posix_memalign":         {3, 2100},
		"aligned_alloc/memalign": {11, 8720},
		"valloc":                 {2, 10000},
		"pvalloc":                {0, 0},
	}
}

// checkMore checks that rows full count exactly want more than rows base.
func checkMore(t *testing.T, full, base, want map[string][2]uint64) {
	t.Helper()
	if len(full) != len(want) {
		t.Errorf("functions %v, want %v", full, want)
	}
	for fn, w := range want {
		got := [2]uint64{full[fn][0] - base[fn][0], full[fn][1] - base[fn][1]}
		if got != w {
			t.Errorf("%s: %d calls, %d bytes more than %v; want %d, %d", fn, got[0], got[1], base[fn], w[0], w[1])
		}
	}
}

// TestHostMallocFollow: -f counts the workload's forked child (7 mallocs
// of 333 bytes) and the program its other child execs (the static
// workload again: its start-up and its pattern); without -f the workload
// and its thread only. Each run ends by itself when the workload exits.
// Runs are compared with runs that differ only by what is checked: the
// thread's creation and static glibc's start-up allocate the same in each.
func TestHostMallocFollow(t *testing.T) {
	testkit.RequireRoot(t)
	bin := staticWorkload(t)
	startup := mallocRows(t, "none")
	thread := mallocRows(t, "none", "thread")
	own := mallocRows(t, "thread", "fork", "exec", bin)
	checkMore(t, own, thread, mallocPattern())
	all, stderr := mallocRun(t, []string{"-f"}, "thread", "fork", "exec", bin)
	want := mallocPattern()
	for fn, w := range want {
		want[fn] = [2]uint64{w[0] + startup[fn][0], w[1] + startup[fn][1]}
	}
	want["malloc"] = [2]uint64{want["malloc"][0] + 7, want["malloc"][1] + 7*333}
	checkMore(t, all, own, want)
	if !strings.Contains(stderr, "exec'd "+bin+": allocator glibc ("+bin+", linked statically into the executable)") {
		t.Errorf("stderr does not name the exec'd program's allocator:\n%s", stderr)
	}
}

// heldWorkload starts workload bin (wait hold) with env in the cgroup fd,
// stopped before its pattern; step releases it from one read of stdin.
func heldWorkload(t *testing.T, fd int, bin string, env ...string) (pid int, step func()) {
	t.Helper()
	cmd := exec.Command(bin, "wait", "hold")
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	in, out := testkit.StartHeld(t, cmd)
	lines := bufio.NewScanner(out)
	return cmd.Process.Pid, func() {
		t.Helper()
		if _, err := in.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		if !lines.Scan() || lines.Text() != "done" {
			t.Fatalf("workload said %q", lines.Text())
		}
		testkit.WaitStdinRead(t, cmd.Process.Pid) // held before its exit
	}
}

// TestHostServeMalloc: serve --malloc-pids counts the bytes the processes
// named ask for, in their cgroup and under their allocator's name. Two
// static workloads (glibc) each ask for the pattern's 66820 bytes (malloc
// 16000, calloc 8000, realloc 12000, reallocarray 10000, posix_memalign
// 2100, aligned_alloc 5120, memalign 3600, valloc 10000); the dynamic one
// under jemalloc 76820 (the same, glibc's reallocarray calling jemalloc's
// realloc, and mallocx 6000, rallocx 4000); a fourth workload in the same
// cgroup, not named, adds nothing. (Host only: the workloads are another
// package's testdata, and jemalloc and the compiler are not in the VMs.)
func TestHostServeMalloc(t *testing.T) {
	testkit.RequireRoot(t)
	rel, fd := testCgroup(t, "", fmt.Sprintf("bpfkit-serve-malloc-%d", os.Getpid()))
	const jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
	if _, err := os.Stat(jemalloc); err != nil {
		testkit.Skip(t, "%s is missing: install libjemalloc2 (make deps)", jemalloc)
	}
	clang, err := exec.LookPath("clang-19")
	if err != nil {
		testkit.Skip(t, "clang-19 is not installed: run make deps")
	}
	dynamic := filepath.Join(t.TempDir(), "workload")
	if out, err := exec.Command(clang, "-O1", "-fno-omit-frame-pointer", "-fno-builtin", "-o", dynamic, "../../pkg/trace/malloc/testdata/workload.c").CombinedOutput(); err != nil {
		t.Fatalf("build the workload: %v\n%s", err, out)
	}
	static := staticWorkload(t)
	pid1, step1 := heldWorkload(t, fd, static)
	pid2, step2 := heldWorkload(t, fd, static)
	pid3, step3 := heldWorkload(t, fd, dynamic, "LD_PRELOAD="+jemalloc)
	_, stepOther := heldWorkload(t, fd, static)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startServe(t, addr, "--tools", "exec", "--malloc-pids", fmt.Sprintf("%d,%d,%d", pid1, pid2, pid3))
	const pattern = 16000 + 8000 + 12000 + 10000 + 2100 + 5120 + 3600 + 10000
	want := map[string]float64{"glibc": 2 * pattern, "jemalloc": pattern + 6000 + 4000}
	for alloc := range want {
		if got := metricWith(t, addr, "bpfkit_malloc_bytes_total", fmt.Sprintf("cgroup=%q", rel), fmt.Sprintf("allocator=%q", alloc)); got != 0 {
			t.Fatalf("%s before the pattern: %v bytes, want 0", alloc, got)
		}
	}
	for _, step := range []func(){step1, step2, step3, stepOther} {
		step()
	}
	// The uprobes count as the calls run: the pattern is counted once
	// the workload says done.
	for alloc, w := range want {
		if got := metricWith(t, addr, "bpfkit_malloc_bytes_total", fmt.Sprintf("cgroup=%q", rel), fmt.Sprintf("allocator=%q", alloc)); got != w {
			t.Errorf("cgroup %s, allocator %s: bpfkit_malloc_bytes_total %v, want %v", rel, alloc, got, w)
		}
	}
	if got, w := metricWith(t, addr, "bpfkit_malloc_bytes_total"), want["glibc"]+want["jemalloc"]; got != w {
		t.Errorf("bpfkit_malloc_bytes_total over every series %v, want %v (only the processes named)", got, w)
	}
}
