package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

func TestMain(m *testing.M) {
	// The test binary doubles as bpfkit: tests run it as a child.
	testkit.Register("bpfkit", func(args []string) int {
		os.Args = append([]string{"bpfkit"}, args...)
		return run()
	})
	testkit.Register("open-as", childOpenAs)
	// bpfkit without any capability, though root.
	testkit.Register("bpfkit-nocaps", func(args []string) int {
		runtime.LockOSThread() // capabilities are per thread
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return 99
		}
		os.Args = append([]string{"bpfkit"}, args...)
		return run()
	})
	testkit.Register("exit", func(args []string) int { return 0 })
	// bpfkit as `ip netns exec NAME bpfkit ...` runs it: in a mount
	// namespace of its own (the caller unshares it) with a fresh /sys whose
	// source is the network namespace's name, hiding /sys/fs/bpf.
	testkit.Register("bpfkit-ipnetns", func(args []string) int {
		if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil {
			return 98
		}
		if err := unix.Mount(args[0], "/sys", "sysfs", 0, ""); err != nil {
			return 98
		}
		os.Args = append([]string{"bpfkit"}, args[1:]...)
		return run()
	})
	testkit.Main(m)
}

// bpfkit returns a command that runs bpfkit with args.
func bpfkit(t *testing.T, args ...string) *exec.Cmd {
	return testkit.Command(t, "bpfkit", args...)
}

// runBpfkit runs bpfkit to the end and returns stdout, stderr, exit code.
func runBpfkit(t *testing.T, cmd *exec.Cmd) (string, string, int) {
	t.Helper()
	return runCmd(t, cmd, (*exec.Cmd).Start)
}

// runCmd is runBpfkit with a way to start the command (in a netns, say).
func runCmd(t *testing.T, cmd *exec.Cmd, start func(*exec.Cmd) error) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := start(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// oneLineError checks a failed run: exit code 1 and a single line on stderr
// that contains every one of wants.
func oneLineError(t *testing.T, stderr string, code int, wants ...string) {
	t.Helper()
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "bpfkit: ") {
		t.Errorf("want one line starting with 'bpfkit: ', got %q", stderr)
	}
	for _, w := range wants {
		if !strings.Contains(stderr, w) {
			t.Errorf("error %q does not mention %q", stderr, w)
		}
	}
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"opensnoop", "--bogus"}, []string{"unknown flag: --bogus", "bpfkit opensnoop --help"}},
		{[]string{"opensnoop", "-o", "yaml"}, []string{`"yaml"`, "table or json"}},
		{[]string{"opensnoop", "--ring-size", "1000"}, []string{"power of two"}},
		{[]string{"opensnoop", "--pid", "abc"}, []string{"--pid"}},
		{[]string{"opensnoop", "extra"}, []string{"unknown command"}},
		{[]string{"opensnoop", "-n", "a-very-long-task-name"}, []string{"15 bytes"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, stderr, code := runBpfkit(t, bpfkit(t, tc.args...))
			oneLineError(t, stderr, code, tc.wants...)
		})
	}
}

func TestVersion(t *testing.T) {
	stdout, _, code := runBpfkit(t, bpfkit(t, "--version"))
	if code != 0 || !strings.HasPrefix(stdout, "bpfkit version ") {
		t.Errorf("--version: %q (exit %d)", stdout, code)
	}
}

func TestNotPrivileged(t *testing.T) {
	testkit.RequireRoot(t) // to become someone else
	cmd := bpfkit(t, "opensnoop")
	testkit.AsUser(t, cmd, 65534, 65534)
	_, stderr, code := runBpfkit(t, cmd)
	oneLineError(t, stderr, code, "CAP_BPF", "CAP_PERFMON", "sudo")
}

func TestMissingCgroup(t *testing.T) {
	testkit.RequireRoot(t)
	_, stderr, code := runBpfkit(t, bpfkit(t, "opensnoop", "--cgroup", "/sys/fs/cgroup/no-such-cgroup-bpfkit"))
	oneLineError(t, stderr, code, "no-such-cgroup-bpfkit", "does not exist")
}

// TestOpensnoopJSON runs the CLI end to end: a file with a newline and
// invalid UTF-8 in its name comes out as valid JSON with its full path,
// and --count stops it with a summary.
func TestOpensnoopJSON(t *testing.T) {
	testkit.RequireRoot(t)
	dir := t.TempDir()
	name := "odd\nname\xff.txt"
	target := filepath.Join(dir, name)
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.EnableBPFStats(t)
	cmd := bpfkit(t, "opensnoop", "-o", "json", "-F", "-x", "--count", "1", "-n", "bpfkit-probe")
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	// Once bpfkit reads its ring, every program is attached: open the file
	// once from a task named bpfkit-probe, failing on purpose (O_DIRECTORY
	// on a regular file). --count 1 ends bpfkit at that event.
	testkit.WaitRingReader(t, cmd.Process.Pid)
	openAsNamed(t, "bpfkit-probe", dir, name)
	out := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(stdout); out <- b }()
	var line string
	select {
	case b := <-out:
		line = strings.TrimSuffix(string(b), "\n")
	case <-time.After(time.Minute): // the reader flushes every 10ms; slow only under emulation
		// SIGINT first: its summary (events, lost, runs the kernel
		// skipped) tells where the event went; the programs' run
		// counts whether they ran at all.
		runs := testkit.ProgramRuns(cmd.Process.Pid)
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-out:
		case <-time.After(10 * time.Second):
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("bpfkit did not report the open within a minute: it was lost; stderr: %s; programs: %s", stderr.String(), runs)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("bpfkit: %v: %s", err, stderr.String())
	}
	if strings.Count(line, "\n") != 0 {
		t.Fatalf("stdout %q: want one line", line)
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		t.Fatalf("not JSON: %v: %q", err, line)
	}
	if ev["comm"] != "bpfkit-probe" || ev["errno"] != float64(syscall.ENOTDIR) || ev["fd"] != -1.0 ||
		ev["path"] != "odd\nname\ufffd.txt" || ev["full_path"] != filepath.Join(dir, "odd\nname\ufffd.txt") ||
		ev["full_path_from_name"] != true {
		t.Errorf("event %v", ev)
	}
	if !strings.Contains(stderr.String(), "bpfkit: 1 events, 0 lost") {
		t.Errorf("no summary on stderr: %q", stderr.String())
	}
}

// childOpenAs names its thread args[0], changes to directory args[1] and
// opens args[2] there with O_DIRECTORY, which fails for a regular file.
func childOpenAs(args []string) int {
	if err := testkit.NameThread(args[0]); err != nil {
		return 2
	}
	if err := unix.Chdir(args[1]); err != nil {
		return 3
	}
	if fd, err := unix.Open(args[2], unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
		unix.Close(fd)
	}
	return 0
}

func openAsNamed(t *testing.T, comm, dir, name string) {
	t.Helper()
	if err := testkit.Command(t, "open-as", comm, dir, name).Run(); err != nil {
		t.Fatalf("open-as: %v", err)
	}
}

// startOpensnoop starts bpfkit opensnoop with args and waits for its
// header, which it prints once attached.
func startOpensnoop(t *testing.T, args ...string) (*exec.Cmd, *bufio.Reader, io.ReadCloser, *bytes.Buffer) {
	t.Helper()
	cmd := bpfkit(t, append([]string{"opensnoop"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	r := bufio.NewReader(stdout)
	header, err := r.ReadString('\n')
	if err != nil || !strings.Contains(header, "PATH") {
		t.Fatalf("header %q: %v; stderr: %s", header, err, stderr.String())
	}
	return cmd, r, stdout, &stderr
}

// TestSIGTERM: bpfkit detaches, flushes and summarises on SIGTERM.
func TestSIGTERM(t *testing.T) {
	testkit.RequireRoot(t)
	cmd, _, _, stderr := startOpensnoop(t, "-n", "no-such-task-x")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v: %s", err, stderr.String())
	}
	if got := stderr.String(); got != "bpfkit: 0 events, 0 lost\n" {
		t.Errorf("stderr %q", got)
	}
}

// TestClosedPipe: `bpfkit opensnoop | head -1` ends quietly once head has gone.
func TestClosedPipe(t *testing.T) {
	testkit.RequireRoot(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The header came: bpfkit is attached. One open makes it write an
	// event into the closed pipe.
	cmd, _, stdout, stderr := startOpensnoop(t, "-n", "bpfkit-pipe")
	stdout.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	openAsNamed(t, "bpfkit-pipe", dir, "f")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v: %s", err, stderr.String())
		}
		if stderr.String() != "bpfkit: 1 events, 0 lost\n" {
			t.Errorf("stderr %q, want only the summary", stderr.String())
		}
	case <-time.After(time.Minute): // the reader flushes every 10ms; slow only under emulation
		t.Fatalf("bpfkit did not stop within a minute of an open after its reader went away; stderr: %s", stderr.String())
	}
}

func TestCheck(t *testing.T) {
	testkit.RequireRoot(t)
	stdout, stderr, code := runBpfkit(t, bpfkit(t, "check"))
	if code != 0 {
		t.Fatalf("check failed (%d): %s%s", code, stdout, stderr)
	}
	for _, want := range []string{"BTF", "ring buffer", "tracefs", "opensnoop"} {
		found := false
		for _, line := range strings.Split(stdout, "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(line, want) && strings.Contains(line, " yes ") {
				found = true
			}
		}
		if !found {
			t.Errorf("check does not say %s is there:\n%s", want, stdout)
		}
	}
	// syscount's hooks are on every kernel of the matrix; the program it
	// runs itself (syscall_table, section "raw_tp") is no hook to miss.
	if !regexp.MustCompile(`(?m)^syscount +yes all 3 hooks: sys_enter, sys_enter_getpid, sys_exit$`).MatchString(stdout) {
		t.Errorf("check does not give syscount its 3 hooks:\n%s", stdout)
	}
}

// TestDuration: --duration ends the run by itself, with a summary, once
// the duration has passed and soon after.
func TestDuration(t *testing.T) {
	testkit.RequireRoot(t)
	const d = 500 * time.Millisecond
	cmd := bpfkit(t, "opensnoop", "-n", "no-such-task-x", "-d", d.String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// The timer starts after attaching, before the ring reader exists.
	testkit.WaitRingReader(t, cmd.Process.Pid)
	ready := time.Now()
	err := <-done
	end := time.Now()
	if err != nil || !strings.HasPrefix(stdout.String(), "    PID ") || stderr.String() != "bpfkit: 0 events, 0 lost\n" {
		t.Errorf("exit %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
	// Once the timer fires, bpfkit reads what the ring holds and detaches:
	// ~250ms measured here (Linux 6.18); 1s covers a busy machine, 10s an
	// emulated VM (where detaching the programs alone takes seconds).
	slack := time.Second
	if testkit.Emulated() {
		slack = 10 * time.Second
	}
	if ran := end.Sub(start); ran < d {
		t.Errorf("bpfkit ran %v, less than -d %v", ran, d)
	}
	if after := end.Sub(ready); after > d+slack {
		t.Errorf("bpfkit ran %v after attaching, more than -d %v + %v", after, d, slack)
	}
	t.Logf("-d %v: bpfkit ran %v from start, %v from the ring reader's start", d, end.Sub(start), end.Sub(ready))
}
