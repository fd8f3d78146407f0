package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestMatrixNoVerdict: a cell whose runner dies without a verdict (here a
// vmrun that SIGKILLs the test2json above it) is shown with the runner's
// exit and run once more; the second run's result is the cell's. A
// runner that dies every time leaves NO-RUN, a failed matrix.
func TestMatrixNoVerdict(t *testing.T) {
	const pkg = "github.com/bpfkit/bpfkit/internal/flagval"
	for _, tc := range []struct {
		name  string
		kills int // runs of vmrun that kill test2json before it runs the test
		rc    int
		cell  string
	}{
		{"once", 1, 0, "pass"},
		{"always", 2, 1, "NO-RUN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("VMTEST_CACHE", filepath.Join(dir, "cache"))
			count := filepath.Join(dir, "runs")
			// vmrun's arguments: -kernel host -runner qemu BINARY ARGS...
			script := "#!/bin/sh\necho x >> " + count + "\n" +
				"if [ $(wc -l < " + count + ") -le " + strconv.Itoa(tc.kills) + " ]; then kill -9 $PPID; exit 0; fi\n" +
				"shift 4\nexec \"$@\"\n"
			vmrun := filepath.Join(dir, "vmrun")
			if err := os.WriteFile(vmrun, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			var rc int
			stderr := captureStderr(t, func() {
				rc = matrix(context.Background(), []string{"-kernels", "", "-host", "-p", "1", "-vmrun", vmrun, pkg})
			})
			if rc != tc.rc {
				t.Errorf("exit code %d, want %d", rc, tc.rc)
			}
			runs, err := os.ReadFile(count)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(runs), "x"); n != 2 {
				t.Errorf("vmrun ran %d times, want 2 (the cell once more after no verdict)", n)
			}
			for _, want := range []string{
				"vmtest: host   internal/flagval gave no verdict, running it once more\n",
				"go tool test2json: signal: killed\n",
				"vmtest: no verdict in the output of ",
			} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			cell := "vmtest: host   internal/flagval"
			var last string
			for _, line := range strings.Split(stderr, "\n") {
				if strings.HasPrefix(line, cell) && !strings.Contains(line, "gave no verdict") {
					last = strings.Fields(strings.TrimPrefix(line, cell))[0]
				}
			}
			if last != tc.cell {
				t.Errorf("cell %q, want %q:\n%s", last, tc.cell, stderr)
			}
		})
	}
}

// captureStderr runs f with os.Stderr going to a pipe and returns what it
// wrote there.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	got := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		got <- string(b)
	}()
	defer func() { os.Stderr = saved }()
	f()
	os.Stderr = saved
	w.Close()
	s := <-got
	r.Close()
	return s
}
