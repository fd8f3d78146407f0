package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

// runChild runs the child registered as child (bpfkit, bpfkit-nocaps)
// and returns its exit code, stdout and stderr.
func runChild(t *testing.T, child string, args ...string) (int, string, string) {
	t.Helper()
	stdout, stderr, code := runBpfkit(t, testkit.Command(t, child, args...))
	return code, stdout, stderr
}

func TestExecExitBadInput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		child string
		args  []string
		want  string
		root  bool
	}{
		{"exec unknown flag", "bpfkit", []string{"execsnoop", "--bogus"}, "unknown flag: --bogus", false},
		{"exit unknown flag", "bpfkit", []string{"exitsnoop", "--bogus"}, "unknown flag: --bogus", false},
		{"exec missing cgroup", "bpfkit", []string{"execsnoop", "--cgroup", "/sys/fs/cgroup/bpfkit-no-such-cgroup"}, "does not exist", true},
		{"exit missing cgroup", "bpfkit", []string{"exitsnoop", "--cgroup", "/sys/fs/cgroup/bpfkit-no-such-cgroup"}, "does not exist", true},
		{"exec args limit", "bpfkit", []string{"execsnoop", "--max-args", "200000"}, "give a number of bytes from 1 to 131072", true},
		{"exec no capabilities", "bpfkit-nocaps", []string{"execsnoop"}, "CAP_BPF and CAP_PERFMON", true},
		{"exit no capabilities", "bpfkit-nocaps", []string{"exitsnoop"}, "CAP_BPF and CAP_PERFMON", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				testkit.RequireRoot(t)
			}
			code, stdout, stderr := runChild(t, tc.child, tc.args...)
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			if code == 0 || len(lines) != 1 || !strings.Contains(stderr, tc.want) || stdout != "" {
				t.Errorf("bpfkit %s: exit code %d, stdout %q, stderr %q; want non-zero, nothing on stdout, one line with %q",
					strings.Join(tc.args, " "), code, stdout, stderr, tc.want)
			}
		})
	}
}

// runTraced starts bpfkit with args, waits until it is attached (it reads
// its ring), runs n short-lived children ("exit cli-I") once each, and
// waits until bpfkit exits (its --count must be what the children make).
// It returns bpfkit's stdout and stderr and the children's pids.
func runTraced(t *testing.T, n int, args ...string) (string, string, []int) {
	t.Helper()
	testkit.RequireRoot(t)
	testkit.EnableBPFStats(t)
	cmd := testkit.Command(t, "bpfkit", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	testkit.WaitRingReader(t, cmd.Process.Pid)
	var pids []int
	for i := range n {
		c := testkit.Command(t, "exit", "cli-"+strconv.Itoa(i))
		if err := c.Run(); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
		pids = append(pids, c.Process.Pid)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("bpfkit %s: %v; stderr: %s", strings.Join(args, " "), err, stderr.String())
		}
	case <-time.After(time.Minute): // it flushes every 50ms; slow only under emulation
		// SIGINT first: its summary (events, lost, runs the kernel
		// skipped) tells where the event went; the programs' run
		// counts whether they ran at all.
		runs := testkit.ProgramRuns(cmd.Process.Pid)
		// And once more after another child on each CPU: do they run
		// now, and on which CPUs?
		for cpu := range runtime.NumCPU() {
			err := testkit.RunOnCPU(testkit.Command(t, "exit", "cli-late-"+strconv.Itoa(cpu)), cpu)
			time.Sleep(time.Second)
			runs += fmt.Sprintf("; after a child on CPU %d (%v): %s", cpu, err, testkit.ProgramRuns(cmd.Process.Pid))
		}
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		t.Fatalf("bpfkit %s did not report the %d children within a minute: lost; stdout %q, stderr: %s; programs: %s",
			strings.Join(args, " "), n, stdout.String(), stderr.String(), runs)
	}
	return stdout.String(), stderr.String(), pids
}

func TestExecsnoopCLI(t *testing.T) {
	self, _ := os.Executable()
	me := strconv.Itoa(os.Getpid())
	stdout, stderr, pids := runTraced(t, 1, "execsnoop", "-o", "json", "-p", me, "--count", "1")
	var e map[string]any
	if err := json.Unmarshal([]byte(stdout), &e); err != nil {
		t.Fatalf("stdout %q: %v", stdout, err)
	}
	args, _ := e["args"].([]any)
	if len(args) != 2 || args[0] != self || args[1] != "cli-0" || e["pid"] != float64(pids[0]) ||
		e["ppid"] != float64(os.Getpid()) || e["ret"] != float64(0) || e["filename"] != self {
		t.Errorf("event %v", e)
	}
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"args", "comm", "filename", "pid", "ppid", "ret", "time", "uid"}; !slices.Equal(keys, want) {
		t.Errorf("JSON keys %v, want %v", keys, want)
	}
	if stderr != "bpfkit: 1 events, 0 lost\n" {
		t.Errorf("stderr %q", stderr)
	}
}

func TestExitsnoopCLI(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	stdout, stderr, pids := runTraced(t, 2, "exitsnoop", "-T", "--ppid", me, "--count", "2")
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[0], "EXIT") {
		t.Fatalf("stdout %q: want a header and two exits", stdout)
	}
	for i, l := range lines[1:] {
		// TIME PCOMM PID PPID TID AGE(s) EXIT ARGS...
		if f := strings.Fields(l); len(f) < 7 || f[2] != strconv.Itoa(pids[i]) || f[3] != me || f[6] != "0" {
			t.Errorf("line %q: want PID %d, PPID %s and EXIT 0", l, pids[i], me)
		}
	}
	if stderr != "bpfkit: 2 events, 0 lost\n" {
		t.Errorf("stderr %q", stderr)
	}
}
