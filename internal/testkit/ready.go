package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// WaitRingReader waits until process pid reads a BPF ring buffer: one of
// its epoll instances watches a BPF map of type BPF_MAP_TYPE_RINGBUF, as
// /proc/PID/fdinfo shows. bpfkit's tracers make that reader only once every
// program is attached, so from then on the tracer sees a workload the test
// runs: the test can run it once and expect exactly its events, rather
// than repeat it until something shows.
//
// An epoll entry names the descriptor number the file had when it was
// added, and the entry outlives that number while the file lives on: the
// Go runtime's own epoll was seen holding an entry "tfd 5" for a file
// since closed, when descriptor 5 was already the tool's new ring buffer,
// seconds before any program was attached (the CLI tests' rare "0
// events"). So an entry counts only if the inode it names is the one the
// descriptor has now.
func WaitRingReader(t testing.TB, pid int) {
	t.Helper()
	// Loading and attaching take long in an emulated VM.
	if !WaitFor(2*time.Minute, func() bool { return readsRing(t, pid) }) {
		t.Fatalf("process %d did not start reading a BPF ring buffer within 2 minutes", pid)
	}
}

func readsRing(t testing.TB, pid int) bool {
	dir := fmt.Sprintf("/proc/%d/", pid)
	fds, err := os.ReadDir(dir + "fd")
	if err != nil {
		t.Fatalf("process %d: %v", pid, err)
	}
	for _, fd := range fds {
		if link, _ := os.Readlink(dir + "fd/" + fd.Name()); link != "anon_inode:[eventpoll]" {
			continue
		}
		info, _ := os.ReadFile(dir + "fdinfo/" + fd.Name())
		for _, line := range strings.Split(string(info), "\n") {
			// tfd:        5 events:       19 data: ...
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "tfd:" {
				continue
			}
			link, _ := os.Readlink(dir + "fd/" + f[1])
			target, _ := os.ReadFile(dir + "fdinfo/" + f[1])
			if link == "anon_inode:bpf-map" && strings.Contains(string(target), "map_type:\t27\n") && // BPF_MAP_TYPE_RINGBUF
				sameInode(dir+"fd/"+f[1], f) {
				return true
			}
		}
	}
	return false
}

// sameInode says whether the epoll entry fields (... ino:40e sdev:10)
// name the file that path (a /proc/PID/fd link) opens now.
func sameInode(path string, fields []string) bool {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false
	}
	for _, f := range fields {
		if hex, ok := strings.CutPrefix(f, "ino:"); ok {
			ino, err := strconv.ParseUint(hex, 16, 64)
			return err == nil && ino == st.Ino
		}
	}
	return false
}

// EnableBPFStats makes the kernel count the runs of every BPF program
// until the test ends (BPF_ENABLE_STATS), so that ProgramRuns can say
// whether a tracer's programs ran at all when an event does not show.
func EnableBPFStats(t testing.TB) {
	t.Helper()
	st, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		t.Logf("enable BPF run statistics: %v", err)
		return
	}
	t.Cleanup(func() { st.Close() })
}

// RecursionMisses is how many times the kernel has skipped program p
// because its per-CPU recursion guard was held (0 before 5.12, which does
// not count them).
func RecursionMisses(t testing.TB, p *ebpf.Program) uint64 {
	t.Helper()
	st, err := p.Stats()
	if err != nil {
		t.Fatalf("stats of program %s: %v", p, err)
	}
	return st.RecursionMisses
}

// ProgramRuns describes the BPF programs process pid holds, from
// /proc/PID/fdinfo: name, runs (counted once EnableBPFStats is on) and
// runs the kernel skipped. A test prints it when an expected event is
// missing, to tell a program that never ran from an event lost after it.
func ProgramRuns(pid int) string {
	dir := fmt.Sprintf("/proc/%d/", pid)
	fds, err := os.ReadDir(dir + "fd")
	if err != nil {
		return err.Error()
	}
	var out []string
	kinds := map[string]int{}
	for _, fd := range fds {
		link, _ := os.Readlink(dir + "fd/" + fd.Name())
		if strings.HasPrefix(link, "anon_inode:") {
			kinds[strings.TrimPrefix(link, "anon_inode:")]++
		}
		if link != "anon_inode:bpf-prog" {
			continue
		}
		info, _ := os.ReadFile(dir + "fdinfo/" + fd.Name())
		fields := map[string]string{}
		for _, line := range strings.Split(string(info), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				fields[k] = strings.TrimSpace(v)
			}
		}
		name := "prog " + fields["prog_id"]
		if id, err := strconv.ParseUint(fields["prog_id"], 10, 32); err == nil {
			if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
				if pi, err := p.Info(); err == nil {
					name = pi.Name
				}
				p.Close()
			}
		}
		out = append(out, fmt.Sprintf("%s: %s runs, %s skipped", name, fields["run_cnt"], fields["recursion_misses"]))
	}
	if len(out) == 0 {
		out = append(out, "no BPF programs")
	}
	return fmt.Sprintf("%s (descriptors: %v)", strings.Join(out, "; "), kinds)
}

// RunOnCPU runs cmd to its end with its process bound to one CPU from
// its start (see StartOnCPU).
func RunOnCPU(cmd *exec.Cmd, cpu int) error {
	if err := StartOnCPU(cmd, cpu); err != nil {
		return err
	}
	return cmd.Wait()
}

// StartOnCPU starts cmd with its process bound to one CPU from its start
// (its exec included): the calling thread is bound while it forks, and
// the child inherits that.
func StartOnCPU(cmd *exec.Cmd, cpu int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return err
	}
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return err
	}
	err := cmd.Start()
	if rerr := unix.SchedSetaffinity(0, &old); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// LinkedPrograms counts the BPF links process pid holds by the id of the
// program each one attaches, and its anonymous-inode descriptors by kind
// ("[perf_event]", "bpf_link", ...), from /proc/PID/fd and fdinfo. A
// tracepoint attached through a perf event has a BPF link from Linux 5.15
// on; before, only the perf event holds the program, and no fdinfo names
// it.
func LinkedPrograms(t testing.TB, pid int) (links map[ebpf.ProgramID]int, kinds map[string]int) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/", pid)
	fds, err := os.ReadDir(dir + "fd")
	if err != nil {
		t.Fatalf("process %d: %v", pid, err)
	}
	links, kinds = map[ebpf.ProgramID]int{}, map[string]int{}
	for _, fd := range fds {
		target, _ := os.Readlink(dir + "fd/" + fd.Name())
		kind, ok := strings.CutPrefix(target, "anon_inode:")
		if !ok {
			continue
		}
		kinds[kind]++
		if kind != "bpf_link" {
			continue
		}
		info, _ := os.ReadFile(dir + "fdinfo/" + fd.Name())
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
				if id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
					links[ebpf.ProgramID(id)]++
				}
			}
		}
	}
	return links, kinds
}
