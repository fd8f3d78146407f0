package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

func init() { testkit.Register("filetop-workload", filetopWorkload) }

// filetopWorkload, on one thread that it reports, waits for stdin, then
// writes 10 x 100 bytes to args[0], 5 x 1000 to args[1], 1 x 10 to args[2].
func filetopWorkload(args []string) int {
	runtime.LockOSThread()
	fmt.Printf("%d\n", unix.Gettid())
	var b [1]byte
	_, _ = os.Stdin.Read(b[:])
	for i, spec := range []struct{ n, size int }{{10, 100}, {5, 1000}, {1, 10}} {
		fd, err := unix.Open(args[i], unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for range spec.n {
			if _, err := unix.Write(fd, make([]byte, spec.size)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	}
	return 0
}

// runFiletop runs `bpfkit filetop -p PID -t TID args...` with a long
// interval around the workload, stops it with SIGINT (which shows the
// interval in progress) and returns its stdout.
func runFiletop(t *testing.T, args ...string) (string, []string) {
	t.Helper()
	testkit.RequireRoot(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := []string{filepath.Join(dir, "one"), filepath.Join(dir, "two"), filepath.Join(dir, "three")}

	work := testkit.Command(t, "filetop-workload", files...)
	stdin, err := work.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	wout, err := work.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := work.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = work.Process.Kill(); _ = work.Wait() })
	line, err := bufio.NewReader(wout).ReadString('\n')
	if err != nil {
		t.Fatalf("workload did not start: %v", err)
	}
	tid := strings.TrimSpace(line)

	args = append([]string{"filetop", "-p", strconv.Itoa(work.Process.Pid), "-t", tid}, args...)
	args = append(args, "1h")
	tool := testkit.Command(t, "bpfkit", args...)
	var stdout bytes.Buffer
	tool.Stdout = &stdout
	tool.Stderr = nil
	stderr, err := tool.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tool.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tool.Process.Kill(); _ = tool.Wait() })
	errs := bufio.NewReader(stderr)
	if line, err := errs.ReadString('\n'); err != nil || !strings.HasPrefix(line, "Tracing...") {
		t.Fatalf("bpfkit filetop did not start: %q %v", line, err)
	}

	if _, err := stdin.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := work.Wait(); err != nil {
		t.Fatalf("workload: %v", err)
	}
	if err := tool.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	stuck := time.AfterFunc(time.Minute, func() { _ = tool.Process.Kill() })
	rest, _ := io.ReadAll(errs)
	err = tool.Wait()
	if !stuck.Stop() {
		t.Fatal("bpfkit filetop did not stop on SIGINT within a minute")
	}
	if err != nil {
		t.Fatalf("bpfkit filetop: %v\n%s", err, rest)
	}
	return stdout.String(), files
}

func TestFiletopJSON(t *testing.T) {
	out, files := runFiletop(t, "-o", "json", "-s", "writes", "-r", "2")
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var row map[string]any
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		var keys []string
		for k := range row {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := []string{"comm", "path", "pid", "read_bytes", "reads", "tid", "time", "type", "write_bytes", "writes"}
		if !slices.Equal(keys, want) {
			t.Errorf("keys %v, want %v", keys, want)
		}
		got = append(got, fmt.Sprintf("%s %v %v %v", row["path"], row["writes"], row["write_bytes"], row["type"]))
	}
	want := []string{files[0] + " 10 1000 R", files[1] + " 5 5000 R"}
	if !slices.Equal(got, want) {
		t.Errorf("got rows %q, want %q", got, want)
	}
}

func TestFiletopTable(t *testing.T) {
	out, files := runFiletop(t, "--noclear", "-s", "wbytes", "--per-process")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], "loadavg:") {
		t.Fatalf("want a time line, a header and 3 rows, got:\n%s", out)
	}
	if h := strings.Fields(lines[1]); !slices.Equal(h, []string{"PID", "COMM", "READS", "WRITES", "R_KB", "W_KB", "T", "FILE"}) {
		t.Errorf("header %q", lines[1])
	}
	for i, want := range []string{"0 5 0 4 R " + files[1], "0 10 0 0 R " + files[0], "0 1 0 0 R " + files[2]} {
		f := strings.Fields(lines[2+i])
		if got := strings.Join(f[2:], " "); got != want {
			t.Errorf("row %d: got %q, want %q", i, got, want)
		}
	}
}
