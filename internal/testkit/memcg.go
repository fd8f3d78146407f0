package testkit

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() { Register("testkit.oomhog", oomHog) }

// MemoryCgroup is a memory-limited cgroup a test made, in the hierarchy of
// the memory controller: cgroup v1 (a hybrid system such as this project's
// CI host) or v2.
type MemoryCgroup struct {
	Dir string // its directory
	Rel string // its path below the memory controller's mount, from "/"
	V1  bool
}

// NewMemoryCgroup makes a cgroup limited to limit bytes of memory and no
// swap, removed (its processes killed first) when the test ends, below the
// mount memcgRoot finds (loader.MemcgRoot: testkit may not import loader,
// whose tests use testkit). On cgroup v2 it enables the memory controller
// for the root's children if needed.
func NewMemoryCgroup(t testing.TB, memcgRoot func() (string, bool, error), limit int64) *MemoryCgroup {
	t.Helper()
	root, v1, err := memcgRoot()
	if err != nil {
		t.Fatal(err)
	}
	if !v1 {
		ctl, _ := os.ReadFile(filepath.Join(root, "cgroup.subtree_control"))
		if !strings.Contains(" "+strings.TrimSpace(string(ctl))+" ", " memory ") {
			write(t, filepath.Join(root, "cgroup.subtree_control"), "+memory")
		}
	}
	m := &MemoryCgroup{Rel: fmt.Sprintf("/bpfkit-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-")), V1: v1}
	m.Dir = filepath.Join(root, m.Rel)
	if err := os.Mkdir(m.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveCgroup(t, m.Dir) })
	l := strconv.FormatInt(limit, 10)
	if v1 {
		write(t, filepath.Join(m.Dir, "memory.limit_in_bytes"), l)
		// With swap accounting, memory+swap too (no swapping out instead).
		if _, err := os.Stat(filepath.Join(m.Dir, "memory.memsw.limit_in_bytes")); err == nil {
			write(t, filepath.Join(m.Dir, "memory.memsw.limit_in_bytes"), l)
		}
		return m
	}
	write(t, filepath.Join(m.Dir, "memory.max"), l)
	if _, err := os.Stat(filepath.Join(m.Dir, "memory.swap.max")); err == nil {
		write(t, filepath.Join(m.Dir, "memory.swap.max"), "0")
	}
	return m
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0); err != nil {
		t.Fatalf("write %q to %s: %v", s, path, err)
	}
}

// Add moves process pid into the cgroup.
func (m *MemoryCgroup) Add(t testing.TB, pid int) {
	t.Helper()
	write(t, filepath.Join(m.Dir, "cgroup.procs"), strconv.Itoa(pid))
}

// OOMKills is the kernel's count of OOM kills in the cgroup: oom_kill in
// memory.events (v2) or memory.oom_control (v1, 4.13+).
func (m *MemoryCgroup) OOMKills(t testing.TB) uint64 {
	t.Helper()
	file := "memory.events"
	if m.V1 {
		file = "memory.oom_control"
	}
	return keyedValue(t, filepath.Join(m.Dir, file), "oom_kill")
}

// VMStat is counter name of /proc/vmstat.
func VMStat(t testing.TB, name string) uint64 {
	t.Helper()
	return keyedValue(t, "/proc/vmstat", name)
}

// keyedValue reads the value of key in a file of "key value" lines.
func keyedValue(t testing.TB, path, key string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := bufio.NewScanner(f)
	for in.Scan() {
		if k, v, ok := strings.Cut(in.Text(), " "); ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("%s: %s: %v", path, key, err)
			}
			return n
		}
	}
	t.Fatalf("%s has no %s", path, key)
	return 0
}

// RemoveCgroup kills what is left in dir and removes it.
func RemoveCgroup(t testing.TB, dir string) {
	for range 250 {
		procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(procs)) {
			if pid, err := strconv.Atoi(f); err == nil {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
		if err := unix.Rmdir(dir); err == nil || err == unix.ENOENT {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("cgroup %s could not be removed", dir)
}

// OOMHog runs a child that sets its oom_score_adj to scoreAdj, waits until
// place (given its pid) has put it into the cgroups the test wants, then
// allocates and touches memory on one thread, 1 MiB at a time, up to 1 GiB: it must be
// killed by the OOM killer (SIGKILL) before. It returns the child's pid.
func OOMHog(t testing.TB, scoreAdj int, place func(pid int)) int {
	t.Helper()
	cmd := Command(t, "testkit.oomhog", strconv.Itoa(scoreAdj))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	WaitStdinRead(t, pid)
	place(pid)
	fmt.Fprintln(in, "go")
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the hog %d ended with %v, not killed by SIGKILL: the memory limit did not hold", pid, err)
	}
	return pid
}

func oomHog(args []string) int {
	if len(args) != 1 {
		return 2
	}
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte(args[0]), 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return 2
	}
	// One thread faults the pages in (the kernel caches RSS counts per
	// thread before 6.2: fewer threads, closer counts).
	runtime.LockOSThread()
	var keep [][]byte
	for range 1024 {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
	}
	fmt.Fprintln(os.Stderr, "allocated", len(keep), "MiB and was not killed")
	return 3
}
