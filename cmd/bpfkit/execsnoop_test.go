package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/pkg/loader/testkit"
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

// runUntilExit starts bpfkit with args and, until it exits (at most 20s),
// runs a short-lived child every 20ms, which the tracer reports.
func runUntilExit(t *testing.T, args ...string) (string, string) {
	t.Helper()
	testkit.RequireRoot(t)
	cmd := testkit.Command(t, "bpfkit", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(20 * time.Second)
	for i := 0; ; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("bpfkit %s: %v; stderr: %s", strings.Join(args, " "), err, stderr.String())
			}
			return stdout.String(), stderr.String()
		case <-deadline:
			cmd.Process.Kill()
			<-done
			t.Fatalf("bpfkit %s reported nothing in 20s; stderr: %s", strings.Join(args, " "), stderr.String())
		case <-time.After(20 * time.Millisecond):
			c := testkit.Command(t, "exit", "cli-"+strconv.Itoa(i))
			_ = c.Run()
		}
	}
}

func TestExecsnoopCLI(t *testing.T) {
	self, _ := os.Executable()
	me := strconv.Itoa(os.Getpid())
	stdout, stderr := runUntilExit(t, "execsnoop", "-o", "json", "-p", me, "--count", "1")
	var e map[string]any
	if err := json.Unmarshal([]byte(stdout), &e); err != nil {
		t.Fatalf("stdout %q: %v", stdout, err)
	}
	args, _ := e["args"].([]any)
	if len(args) != 2 || args[0] != self || !strings.HasPrefix(fmt.Sprint(args[1]), "cli-") ||
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
	stdout, _ := runUntilExit(t, "exitsnoop", "-T", "--ppid", me, "--count", "2")
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[0], "EXIT") {
		t.Fatalf("stdout %q: want a header and two exits", stdout)
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) < 7 || f[3] != me || f[6] != "0" {
			t.Errorf("line %q: want PPID %s and EXIT 0", l, me)
		}
	}
}
