package opensnoop_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/opensnoop"
)

func TestMain(m *testing.M) {
	testkit.Register("opens", childOpens)
	testkit.Register("openloop", childOpenLoop)
	testkit.Register("named", childNamed)
	testkit.Register("namegone", childNameGone)
	testkit.Main(m)
}

// step is what the child did for one open, reported on its stdout.
type step struct {
	Call  string `json:"call"` // the system call: open, openat or openat2
	PID   int    `json:"pid"`
	Name  string `json:"name"`
	Dir   string `json:"dir"`   // directory the name is relative to
	Flags uint32 `json:"flags"` // as passed (openat2: open_how.flags)
	Mode  uint32 `json:"mode"`  // (openat2: open_how.mode)
	FD    int    `json:"fd"`
	Errno int    `json:"errno"`
}

// The hooks each system call drives: opensnoop's enter_open, enter_openat
// and enter_openat2 programs at the sys_enter_* tracepoints, and exit_open
// at the matching sys_exit_* one.
var hookOf = map[string]string{
	"open":    "sys_enter_open + sys_exit_open",
	"openat":  "sys_enter_openat + sys_exit_openat",
	"openat2": "sys_enter_openat2 (reads struct open_how) + sys_exit_openat2",
}

// childOpens waits for a line on stdin, then opens the workload's files
// (args[0] is the test's directory) with raw open(2), openat(2) and
// openat2(2) calls, and reports each call as JSON.
func childOpens(args []string) int {
	root := args[0]
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return 2
	}
	out := json.NewEncoder(os.Stdout)
	do := func(call string, dirfd int, dir, name string, flags, mode uint32) int {
		p, err := unix.BytePtrFromString(name)
		if err != nil {
			return -1
		}
		var r uintptr
		var errno syscall.Errno
		switch call {
		case "open":
			r, _, errno = unix.Syscall(unix.SYS_OPEN, uintptr(unsafe.Pointer(p)), uintptr(flags), uintptr(mode))
		case "openat":
			r, _, errno = unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(flags), uintptr(mode), 0, 0)
		case "openat2":
			how := unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode)}
			r, _, errno = unix.Syscall6(unix.SYS_OPENAT2, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
				uintptr(unsafe.Pointer(&how)), unsafe.Sizeof(how), 0, 0)
		}
		s := step{Call: call, PID: os.Getpid(), Name: name, Dir: dir, Flags: flags, Mode: mode, FD: int(r)}
		if errno != 0 {
			s.FD, s.Errno = -1, int(errno)
		}
		_ = out.Encode(s)
		return s.FD
	}
	abs := filepath.Join(root, "abs.txt")
	do("openat", unix.AT_FDCWD, "", abs, unix.O_RDONLY|unix.O_CLOEXEC, 0)

	cwd := filepath.Join(root, "cwd")
	if err := unix.Chdir(cwd); err != nil {
		return 3
	}
	do("openat", unix.AT_FDCWD, cwd, "rel.txt", unix.O_RDONLY, 0)

	other := filepath.Join(root, "other")
	dirfd := do("openat", unix.AT_FDCWD, "", other, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	do("openat", dirfd, other, "sub/at.txt", unix.O_WRONLY|unix.O_APPEND, 0)
	do("openat", unix.AT_FDCWD, cwd, "missing.txt", unix.O_RDONLY, 0)
	do("openat", dirfd, other, "missing-at.txt", unix.O_RDONLY, 0)
	do("openat", unix.AT_FDCWD, "", filepath.Join(root, "created.txt"), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o640)
	do("openat", unix.AT_FDCWD, "", longPath(root), unix.O_RDONLY, 0)

	do("open", 0, cwd, "rel.txt", unix.O_RDWR|unix.O_NOFOLLOW, 0)
	do("open", 0, "", filepath.Join(root, "open-created.txt"), unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, 0o600)
	do("open", 0, cwd, "missing-open.txt", unix.O_RDONLY, 0)

	do("openat2", dirfd, other, "sub/at.txt", unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME, 0)
	do("openat2", unix.AT_FDCWD, "", filepath.Join(root, "openat2-created.txt"), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o604)
	do("openat2", dirfd, other, "missing-openat2.txt", unix.O_RDONLY, 0)
	return 0
}

// longPath is a file more than 300 bytes deep below root.
func longPath(root string) string {
	p := root
	for i := 0; i < 5; i++ {
		p = filepath.Join(p, strings.Repeat(string(rune('a'+i)), 70))
	}
	return filepath.Join(p, "long.txt")
}

func mkfile(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// copied is an Event that outlives the emit callback.
type copied struct {
	opensnoop.Event
	path, full string
}

// child is a workload process blocked until go is called.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
}

func startChild(t *testing.T, cmd *exec.Cmd) *child {
	t.Helper()
	// Tracers attach after this: not to the Go runtime's own opens as
	// the child starts (cgroup files, which fail in a VM's root cgroup).
	stdin, stdout := testkit.StartHeld(t, cmd)
	return &child{cmd: cmd, stdin: stdin, stdout: stdout}
}

// drive lets the child run its workload to the end while tr streams to
// emit, calls afterChild (if set) once the child has exited, then drains
// the ring and returns the stream's stats and what the child printed.
func drive(t *testing.T, tr *opensnoop.Tracer, c *child, opts loader.StreamOptions,
	emit func(*opensnoop.Event) error, afterChild func()) (loader.Stats, []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var (
		st     loader.Stats
		runErr error
		done   = make(chan struct{})
	)
	go func() {
		defer close(done)
		st, runErr = tr.Run(ctx, opts, emit)
	}()
	if _, err := fmt.Fprintln(c.stdin, "go"); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(c.stdout)
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if afterChild != nil {
		afterChild()
	}
	cancel()
	<-done
	if runErr != nil {
		t.Fatal(runErr)
	}
	return st, strings.Split(strings.TrimSpace(string(out)), "\n")
}

// collect traces with cfg while the child runs and returns its events.
func collect(t *testing.T, cfg opensnoop.Config, c *child) ([]copied, []string, loader.Stats) {
	t.Helper()
	tr, err := opensnoop.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var events []copied
	st, lines := drive(t, tr, c, loader.StreamOptions{}, func(e *opensnoop.Event) error {
		c := copied{Event: *e, path: string(e.Path), full: string(e.FullPath)}
		c.Comm = append([]byte(nil), e.Comm...)
		c.Path, c.FullPath = nil, nil
		events = append(events, c)
		return nil
	}, nil)
	return events, lines, st
}

// trace runs the child with args, filtered on its pid.
func trace(t *testing.T, cfg opensnoop.Config, name string, args ...string) ([]copied, []string, loader.Stats) {
	t.Helper()
	c := startChild(t, testkit.Command(t, name, args...))
	cfg.Filter.PID = uint32(c.cmd.Process.Pid)
	return collect(t, cfg, c)
}

// openFixture makes the files childOpens opens and returns their root.
func openFixture(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mkfile(t, filepath.Join(root, "abs.txt"))
	mkfile(t, filepath.Join(root, "cwd", "rel.txt"))
	mkfile(t, filepath.Join(root, "other", "sub", "at.txt"))
	mkfile(t, longPath(root))
	return root
}

func TestOpensnoopCases(t *testing.T) {
	testkit.RequireRoot(t)
	root := openFixture(t)

	events, lines, st := trace(t, opensnoop.Config{FullPath: true}, "opens", root)
	if st.Lost != 0 {
		t.Errorf("lost %d events", st.Lost)
	}
	var steps []step
	for _, l := range lines {
		var s step
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("child said %q: %v", l, err)
		}
		steps = append(steps, s)
	}
	// Which hooks each step drives: hookOf[steps[i].Call].
	calls := []string{"openat", "openat", "openat", "openat", "openat", "openat", "openat", "openat",
		"open", "open", "open", "openat2", "openat2", "openat2"}
	if len(steps) != len(calls) {
		t.Fatalf("child made %d opens, want %d", len(steps), len(calls))
	}
	for i, s := range steps {
		if s.Call != calls[i] || s.Errno != 0 && !strings.Contains(s.Name, "missing") {
			t.Fatalf("step %d: %+v, want a %s call that succeeds unless its file is missing", i, s, calls[i])
		}
	}
	if len(events) != len(steps) {
		for _, e := range events {
			t.Logf("event: %q fd=%d errno=%d", e.path, e.FD, e.Errno)
		}
		t.Fatalf("got %d events, want %d", len(events), len(steps))
	}
	for i, s := range steps {
		e := events[i]
		wantFull := s.Name
		if s.Dir != "" {
			wantFull = filepath.Join(s.Dir, s.Name)
		}
		if e.path != s.Name || e.full != wantFull || int(e.FD) != s.FD || int(e.Errno) != s.Errno ||
			e.Flags != s.Flags || e.Mode != s.Mode || int(e.PID) != s.PID || e.TID == 0 ||
			e.FullPathFromName != (s.Errno != 0) || e.PathTruncated || e.FullPathTruncated {
			t.Errorf("open %d (%s): got path=%q full=%q fd=%d errno=%d flags=%#o mode=%#o fromName=%v\n"+
				"                  want path=%q full=%q fd=%d errno=%d flags=%#o mode=%#o fromName=%v",
				i, hookOf[s.Call], e.path, e.full, e.FD, e.Errno, e.Flags, e.Mode, e.FullPathFromName,
				s.Name, wantFull, s.FD, s.Errno, s.Flags, s.Mode, s.Errno != 0)
		}
	}
	if e := events[4]; e.Errno != unix.ENOENT {
		t.Errorf("missing file: errno %v, want ENOENT", e.Errno)
	}
	if e := events[6]; e.Mode != 0o640 || e.Flags&unix.O_CREAT == 0 {
		t.Errorf("O_CREAT: mode %#o flags %#x", e.Mode, e.Flags)
	}
	if n := len(events[7].full); n <= 300 {
		t.Errorf("long path is %d bytes, want > 300", n)
	}
	if e := events[9]; e.Mode != 0o600 || e.Flags != unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC || e.FD < 0 {
		t.Errorf("open(2) O_CREAT: fd %d mode %#o flags %#x", e.FD, e.Mode, e.Flags)
	}
	if e := events[12]; e.Mode != 0o604 || e.Flags != unix.O_RDWR|unix.O_CREAT|unix.O_EXCL || e.FD < 0 {
		t.Errorf("openat2 O_CREAT: fd %d open_how.mode %#o open_how.flags %#x", e.FD, e.Mode, e.Flags)
	}
	if e := events[11]; e.Flags != unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME {
		t.Errorf("openat2: open_how.flags %#x, want %#x", e.Flags, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME)
	}
}

func TestOpensnoopFailedOnly(t *testing.T) {
	testkit.RequireRoot(t)
	root := openFixture(t)

	events, _, _ := trace(t, opensnoop.Config{FailedOnly: true}, "opens", root)
	var names []string
	for _, e := range events {
		names = append(names, e.path)
		if e.full != "" {
			t.Errorf("full path %q without FullPath", e.full)
		}
	}
	if got, want := strings.Join(names, ","), "missing.txt,missing-at.txt,missing-open.txt,missing-openat2.txt"; got != want {
		t.Errorf("failed opens: %s, want %s", got, want)
	}
}

// childOpenLoop opens args[1] args[0] times as fast as it can.
func childOpenLoop(args []string) int {
	var n int
	fmt.Sscan(args[0], &n)
	path := args[1]
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return 2
	}
	for i := 0; i < n; i++ {
		fd, err := unix.Open(path, unix.O_RDONLY, 0)
		if err != nil {
			return 3
		}
		unix.Close(fd)
	}
	return 0
}

// TestOpensnoopNothingLost: a tight loop of opens gives exactly as many
// events, with the default ring buffer.
func TestOpensnoopNothingLost(t *testing.T) {
	testkit.RequireRoot(t)
	const n = 200_000
	path := filepath.Join(t.TempDir(), "f")
	mkfile(t, path)

	c := startChild(t, testkit.Command(t, "openloop", fmt.Sprint(n), path))
	tr, err := opensnoop.New(opensnoop.Config{Filter: loader.TaskFilter{PID: uint32(c.cmd.Process.Pid)}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()

	var (
		matched uint64
		odd     []string // the first events that are not the loop's opens
	)
	st, _ := drive(t, tr, c, loader.StreamOptions{}, func(e *opensnoop.Event) error {
		if string(e.Path) == path && e.FD >= 0 {
			matched++
		} else if len(odd) < 5 {
			odd = append(odd, fmt.Sprintf("tid %d fd %d errno %v path %q unread %v", e.TID, e.FD, e.Errno, e.Path, e.NameUnread))
		}
		return nil
	}, nil)
	if matched != n || st.Lost != 0 {
		t.Fatalf("got %d events of %d opens (%d records), lost %d; others: %q", matched, n, st.Events, st.Lost, odd)
	}
}

// childNameGone, after "go", opens the FIFO args[0] for reading with the
// name in a page of its own, and drops that page (MADV_DONTNEED) while the
// open waits for a writer: when the open returns, the name it copied is
// no longer in the process's memory. Then it opens the FIFO for writing,
// which lets the first open return, and prints the reader's tid and fd.
func childNameGone(args []string) int {
	fifo := args[0]
	page, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return 2
	}
	copy(page, fifo) // the NUL is the page's next byte, still zero
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return 3
	}
	tid, fd := make(chan int, 1), make(chan int, 1)
	cwd := unix.AT_FDCWD
	go func() {
		runtime.LockOSThread()
		tid <- unix.Gettid()
		r, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(cwd),
			uintptr(unsafe.Pointer(&page[0])), unix.O_RDONLY, 0, 0, 0)
		if errno != 0 {
			fd <- -int(errno)
			return
		}
		fd <- int(r)
	}()
	reader := <-tid
	// The reader is asleep in openat (the kernel shows the call only while
	// the task is off CPU), past copying the name, waiting for a writer.
	asleep := testkit.WaitFor(20*time.Second, func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/syscall", reader))
		return strings.HasPrefix(string(b), strconv.Itoa(unix.SYS_OPENAT)+" ")
	})
	if !asleep {
		return 4
	}
	if err := unix.Madvise(page, unix.MADV_DONTNEED); err != nil {
		return 5
	}
	w, err := unix.Open(fifo, unix.O_WRONLY, 0)
	if err != nil {
		return 6
	}
	r := <-fd
	if r < 0 {
		return 7
	}
	unix.Close(w)
	unix.Close(r)
	fmt.Println(reader, r)
	return 0
}

// TestNameUnread: a name that is gone from the caller's memory when the
// call returns is reported as unread, and the opened file's path stands in
// for it, without and with -F (hook: sys_exit_openat).
func TestNameUnread(t *testing.T) {
	testkit.RequireRoot(t)
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("full=%v", full), func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "fifo")
			if err := unix.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			// No preemption signals in the child: one interrupts the
			// reader's open (ERESTARTSYS, seen on 7.2), which the kernel
			// then restarts, reading the name again, from the page
			// dropped by then if the signal came after the drop.
			cmd := testkit.Command(t, "namegone", fifo)
			cmd.Env = append(cmd.Environ(), "GODEBUG=asyncpreemptoff=1")
			c := startChild(t, cmd)
			events, lines, st := collect(t, opensnoop.Config{FullPath: full, Filter: loader.TaskFilter{PID: uint32(c.cmd.Process.Pid)}}, c)
			var tid uint32
			var fd int32
			if len(lines) != 1 {
				t.Fatalf("child printed %q", lines)
			}
			if _, err := fmt.Sscan(lines[0], &tid, &fd); err != nil {
				t.Fatalf("child printed %q: %v", lines[0], err)
			}
			// Besides the FIFO's two opens, the child opens only its
			// reader's /proc/self/task/TID/syscall, to see it asleep.
			poll := fmt.Sprintf("/proc/self/task/%d/syscall", tid)
			fifoOpens := slices.DeleteFunc(events, func(e copied) bool { return e.path == poll && e.Errno == 0 && !e.NameUnread })
			if len(fifoOpens) != 2 || st.Lost != 0 {
				t.Fatalf("%d opens of the FIFO, lost %d; want the reader's and the writer's: %+v", len(fifoOpens), st.Lost, fifoOpens)
			}
			for _, e := range fifoOpens {
				reader := e.TID == tid
				if e.path != fifo || e.NameUnread != reader || e.Errno != 0 {
					t.Errorf("open by tid %d (reader %v): path %q, name unread %v, errno %v; want %q, unread only for the reader",
						e.TID, reader, e.path, e.NameUnread, e.Errno, fifo)
				}
				if reader && e.FD != fd {
					t.Errorf("reader's fd %d, want %d", e.FD, fd)
				}
				if full && e.full != fifo || !full && e.full != "" {
					t.Errorf("full path %q with -F %v", e.full, full)
				}
			}
		})
	}
}

// childNamed names its thread args[0], prints its tid, and after "go"
// opens args[1] once from that thread.
func childNamed(args []string) int {
	if err := testkit.NameThread(args[0]); err != nil {
		return 2
	}
	fmt.Println(unix.Gettid())
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return 3
	}
	fd, err := unix.Open(args[1], unix.O_RDONLY, 0)
	if err != nil {
		return 4
	}
	unix.Close(fd)
	return 0
}

// cgroup2Root finds where the cgroup v2 hierarchy is mounted.
func cgroup2Root(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if pre, post, ok := strings.Cut(line, " - "); ok && strings.HasPrefix(post, "cgroup2 ") {
			return strings.Fields(pre)[4]
		}
	}
	testkit.Skip(t, "no cgroup v2 hierarchy is mounted")
	return ""
}

// TestOpensnoopFilters: each in-kernel filter selects exactly the child's
// one open, with no pid filter to help.
func TestOpensnoopFilters(t *testing.T) {
	testkit.RequireRoot(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, c *exec.Cmd) // before start
		cfg   func(t *testing.T, c *child, tid uint32) opensnoop.Config
	}{
		{"comm", nil, func(t *testing.T, c *child, tid uint32) opensnoop.Config {
			return opensnoop.Config{Filter: loader.TaskFilter{Comm: commOf(t)}}
		}},
		{"tid", nil, func(t *testing.T, c *child, tid uint32) opensnoop.Config {
			return opensnoop.Config{Filter: loader.TaskFilter{TID: tid}}
		}},
		{"uid", func(t *testing.T, c *exec.Cmd) { testkit.AsUser(t, c, 65534, 65534) },
			func(t *testing.T, c *child, tid uint32) opensnoop.Config {
				uid := uint32(65534)
				return opensnoop.Config{Filter: loader.TaskFilter{UID: &uid}}
			}},
		{"cgroup", nil, func(t *testing.T, c *child, tid uint32) opensnoop.Config {
			dir, err := os.MkdirTemp(cgroup2Root(t), "bpfkit-test-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = c.cmd.Process.Kill()
				_ = c.cmd.Wait()
				_ = os.Remove(dir)
			})
			if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(c.cmd.Process.Pid)), 0); err != nil {
				t.Fatal(err)
			}
			return opensnoop.Config{Filter: loader.TaskFilter{Cgroup: dir}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "bpfkit-test-") // readable by uid 65534
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "target-"+tc.name)
			mkfile(t, path)
			cmd := testkit.Command(t, "named", commOf(t), path)
			if tc.setup != nil {
				tc.setup(t, cmd)
			}
			c := startChild(t, cmd)
			line, err := c.stdout.ReadString('\n')
			if err != nil {
				t.Fatalf("child: %v", err)
			}
			tid, _ := strconv.Atoi(strings.TrimSpace(line))
			events, _, _ := collect(t, tc.cfg(t, c, uint32(tid)), c)
			var mine int
			for _, e := range events {
				if e.path == path && e.TID == uint32(tid) && e.PID == uint32(c.cmd.Process.Pid) {
					mine++
				}
				if tc.name != "uid" && e.PID != uint32(c.cmd.Process.Pid) {
					t.Errorf("event of another process passed the %s filter: pid %d comm %s path %s", tc.name, e.PID, e.Comm, e.path)
				}
				if tc.name == "uid" && e.UID != 65534 {
					t.Errorf("event of uid %d passed the uid filter", e.UID)
				}
			}
			if mine != 1 {
				t.Errorf("%s filter: %d events of the child's open, want 1 (of %d events)", tc.name, mine, len(events))
			}
		})
	}
}

// commOf returns a task name unique to this test run.
func commOf(t *testing.T) string {
	return fmt.Sprintf("bk%d", os.Getpid()%1000000)
}

// TestOpensnoopCountsLost: with a tiny ring and a stalled reader, events are
// lost, and every one of them is counted: seen + lost = opens.
func TestOpensnoopCountsLost(t *testing.T) {
	testkit.RequireRoot(t)
	const n = 3000
	path := filepath.Join(t.TempDir(), "f")
	mkfile(t, path)
	c := startChild(t, testkit.Command(t, "openloop", fmt.Sprint(n), path))
	tr, err := opensnoop.New(opensnoop.Config{Filter: loader.TaskFilter{PID: uint32(c.cmd.Process.Pid)}, RingSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()

	childDone := make(chan struct{})
	var seen, reported uint64
	opts := loader.StreamOptions{Lost: func(total uint64) { reported = total }}
	st, _ := drive(t, tr, c, opts, func(e *opensnoop.Event) error {
		if seen == 0 {
			<-childDone // stall until the child is through: the ring overflows
		}
		if string(e.Path) == path {
			seen++
		}
		return nil
	}, func() { close(childDone) })
	if st.Lost == 0 || seen+st.Lost != n || reported != st.Lost {
		t.Fatalf("seen %d + lost %d != %d opens (lost callback said %d)", seen, st.Lost, n, reported)
	}
}
