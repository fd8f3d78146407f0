package testkit

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

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

// OOMHogComm is the name (comm) of OOMHog's child.
const OOMHogComm = "bk-oomhog"

// OOMHog runs a child that waits until place (given its pid) has put it
// into the cgroups the test wants, then maps 256 MiB of anonymous memory
// and touches it a page at a time from a thread that is not its leader:
// it must be killed by the OOM killer (SIGKILL) before the end. Its
// oom_score_adj is scoreAdj. It returns the child's pid and the thread id
// of the thread that touched the memory (the task that hit the limit, so
// pid and tid of the OOM's trigger differ).
//
// The child is a static program (oomHogCode), bound to CPU 0 from its exec
// on, whose leader starts one thread and then waits in pause(2) touching
// nothing; the thread touches no memory but its own pages: the process's
// memory counters change only by the thread's page faults, on that CPU,
// one page at a time. So when it is killed, nothing else changes them
// meanwhile, and what the kernel's per-CPU RSS counters (6.2+) hold back
// is on that CPU alone.
func OOMHog(t testing.TB, scoreAdj int, place func(pid int)) (pid, tid int) {
	t.Helper()
	cmd := exec.Command(staticProgram(t, OOMHogComm, oomHogCode))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := StartOnCPU(cmd, 0); err != nil {
		t.Fatal(err)
	}
	pid = cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	write(t, fmt.Sprintf("/proc/%d/oom_score_adj", pid), strconv.Itoa(scoreAdj))
	WaitStdinRead(t, pid) // the thread: the leader only ever waits in pause(2)
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if n, err := strconv.Atoi(task.Name()); err == nil && n != pid {
			tid = n
		}
	}
	if len(tasks) != 2 || tid == 0 {
		t.Fatalf("the hog %d has threads %v, want itself and one more", pid, tasks)
	}
	place(pid)
	if _, err := in.Write([]byte{'g'}); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the hog %d ended with %v, not killed by SIGKILL (exit status 3: it touched all its memory, the limit did not hold; 4: its mmap failed; 5: its clone failed)", pid, err)
	}
	return pid, tid
}

// oomHogCode is OOMHog's program (x86-64). The leader starts a thread
// (clone: CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|
// CLONE_SYSVSEM, its stack 2 KiB under the leader's), then calls pause(2)
// for ever; it exits 5 if the clone failed. The thread reads one byte from
// stdin, mmaps 256 MiB of private anonymous memory (MAP_NORESERVE: more
// than a small VM's RAM is refused otherwise), writes a byte into each
// page, exit_group(3) at the end. It exits 2 if stdin gave no byte, 4 if
// the mmap failed.
var oomHogCode = []byte{
	0xbf, 0x00, 0x0f, 0x05, 0x00, //                   0: mov  $0x50f00,%edi        flags
	0x48, 0x8d, 0xb4, 0x24, 0x00, 0xf8, 0xff, 0xff, // 5: lea  -2048(%rsp),%rsi     stack
	0x31, 0xd2, //                                    13: xor  %edx,%edx            parent_tid
	0x45, 0x31, 0xd2, //                              15: xor  %r10d,%r10d          child_tid
	0x45, 0x31, 0xc0, //                              18: xor  %r8d,%r8d            tls
	0xb8, 0x38, 0x00, 0x00, 0x00, //                  21: mov  $56,%eax             SYS_clone
	0x0f, 0x05, //                                    26: syscall
	0x48, 0x85, 0xc0, //                              28: test %rax,%rax
	0x74, 0x10, //                                    31: je   49 (thread)
	0xbf, 0x05, 0x00, 0x00, 0x00, //                  33: mov  $5,%edi
	0x78, 0x6e, //                                    38: js   150 (exit)           clone failed
	0xb8, 0x22, 0x00, 0x00, 0x00, //                  40: mov  $34,%eax             leader: SYS_pause
	0x0f, 0x05, //                                    45: syscall
	0xeb, 0xf7, //                                    47: jmp  40 (leader)
	0x31, 0xff, //                                    49: xor  %edi,%edi            fd 0
	0x48, 0x8d, 0x74, 0x24, 0xf8, //                  51: lea  -8(%rsp),%rsi        buf
	0xba, 0x01, 0x00, 0x00, 0x00, //                  56: mov  $1,%edx              count
	0x31, 0xc0, //                                    61: xor  %eax,%eax            SYS_read
	0x0f, 0x05, //                                    63: syscall
	0xbf, 0x02, 0x00, 0x00, 0x00, //                  65: mov  $2,%edi
	0x48, 0x83, 0xf8, 0x01, //                        70: cmp  $1,%rax
	0x75, 0x4a, //                                    74: jne  150 (exit)
	0x31, 0xff, //                                    76: xor  %edi,%edi            addr NULL
	0xbe, 0x00, 0x00, 0x00, 0x10, //                  78: mov  $256<<20,%esi        length
	0xba, 0x03, 0x00, 0x00, 0x00, //                  83: mov  $3,%edx              PROT_READ|PROT_WRITE
	0x41, 0xba, 0x22, 0x40, 0x00, 0x00, //            88: mov  $0x4022,%r10d        MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE
	0x49, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff, //      94: mov  $-1,%r8              fd
	0x45, 0x31, 0xc9, //                             101: xor  %r9d,%r9d            offset
	0xb8, 0x09, 0x00, 0x00, 0x00, //                 104: mov  $9,%eax              SYS_mmap
	0x0f, 0x05, //                                   109: syscall
	0xbf, 0x04, 0x00, 0x00, 0x00, //                 111: mov  $4,%edi
	0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff, //           116: cmp  $-4096,%rax
	0x77, 0x1a, //                                   122: ja   150 (exit)           an error
	0x48, 0x8d, 0x90, 0x00, 0x00, 0x00, 0x10, //     124: lea  256<<20(%rax),%rdx  end
	0xc6, 0x00, 0x01, //                             131: movb $1,(%rax)            loop: touch the page
	0x48, 0x05, 0x00, 0x10, 0x00, 0x00, //           134: add  $4096,%rax
	0x48, 0x39, 0xd0, //                             140: cmp  %rdx,%rax
	0x72, 0xf2, //                                   143: jb   131 (loop)
	0xbf, 0x03, 0x00, 0x00, 0x00, //                 145: mov  $3,%edi
	0xb8, 0xe7, 0x00, 0x00, 0x00, //                 150: mov  $231,%eax            exit: SYS_exit_group
	0x0f, 0x05, //                                   155: syscall
}
