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

// TestMatrixHostOnly: in a VM column, a package whose tests do not link
// cilium/ebpf (internal/flagval) and one of TestHost* tests only (deploy)
// are shown as host only, with the reason, and never started; a package
// whose tests load BPF (internal/testkit) is started. The VM is a vmrun
// that records the binary it is given and runs none of its tests.
func TestMatrixHostOnly(t *testing.T) {
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	kernel, vmrun := fakeVM(t, dir, "echo \"$5\" >> "+started)
	out := filepath.Join(dir, "compat.md")
	var rc int
	stderr := captureStderr(t, func() {
		rc = matrix(context.Background(), []string{"-kernels", kernel, "-host=false", "-p", "1", "-vmrun", vmrun, "-out", out,
			mod + "internal/flagval", mod + "deploy", mod + "internal/testkit"})
	})
	if rc != 0 {
		t.Errorf("exit code %d, want 0:\n%s", rc, stderr)
	}
	b, err := os.ReadFile(started)
	if err != nil {
		t.Fatal(err)
	}
	if runs := strings.Fields(string(b)); len(runs) != 1 || !strings.HasSuffix(runs[0], "-testkit.test") {
		t.Errorf("vmrun started %q, want internal/testkit's test binary only", runs)
	}
	for pkg, want := range map[string]string{
		"internal/flagval": "host only (its tests do not link cilium/ebpf)",
		"deploy":           "host only (only benchmarks and TestHost* tests)",
		"internal/testkit": "skip", // started, no test run
	} {
		found := false
		for _, line := range strings.Split(stderr, "\n") {
			if f := strings.Fields(line); len(f) > 3 && f[0] == "vmtest:" && f[2] == pkg {
				found = true
				if got := strings.Join(f[3:], " "); !strings.HasPrefix(got, want) {
					t.Errorf("%s: %q, want %q", pkg, got, want)
				}
			}
		}
		if !found {
			t.Errorf("no cell for %s:\n%s", pkg, stderr)
		}
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| `internal/flagval` | host only |", "| `deploy` | host only |", "| `internal/testkit` | skip |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("%s lacks %q:\n%s", out, want, md)
		}
	}
}

// TestMatrixOneHostCell: host cells run one at a time, next to VM cells.
// The VM and the host are a vmrun that logs when each cell starts and
// ends (half a second apart) and runs none of its tests; two workers, one
// VM cell (internal/testkit; the others are host only there) and four
// host cells.
func TestMatrixOneHostCell(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	kernel, vmrun := fakeVM(t, dir, "echo \"start $2 $5\" >> "+log+"\nsleep 0.5\necho \"end $2 $5\" >> "+log)
	var rc int
	stderr := captureStderr(t, func() {
		rc = matrix(context.Background(), []string{"-kernels", kernel, "-host", "-p", "2", "-vmrun", vmrun,
			mod + "internal/flagval", mod + "internal/output", mod + "deploy", mod + "internal/testkit"})
	})
	if rc != 0 {
		t.Errorf("exit code %d, want 0:\n%s", rc, stderr)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	running := map[string]bool{} // cell ("host /path/001-output.test") -> started, not ended
	hosts, cells, most := 0, 0, 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		event, cell, _ := strings.Cut(line, " ")
		switch event {
		case "start":
			running[cell] = true
			cells++
			if strings.HasPrefix(cell, "host ") {
				hosts++
			}
		case "end":
			delete(running, cell)
		}
		n := 0
		for c := range running {
			if strings.HasPrefix(c, "host ") {
				n++
			}
		}
		if n > 1 {
			t.Errorf("two host cells at once: %v\n%s", running, b)
		}
		most = max(most, len(running))
	}
	if cells != 5 || hosts != 4 {
		t.Errorf("%d cells started, %d of them host cells; want 5 and 4:\n%s", cells, hosts, b)
	}
	if most != 2 {
		t.Errorf("at most %d cells at once, want 2 (a VM cell next to a host cell):\n%s", most, b)
	}
}

// mod is the module's import path with a slash, for the packages a test
// gives the matrix.
const mod = "github.com/bpfkit/bpfkit/"

// fakeVM sets VMTEST_CACHE under dir and returns a kernel image (an empty
// file) and a vmrun that runs the shell lines pre ($2 is the kernel, $5
// the test binary), then the test binary with none of its tests.
func fakeVM(t *testing.T, dir, pre string) (kernel, vmrun string) {
	t.Helper()
	t.Setenv("VMTEST_CACHE", filepath.Join(dir, "cache"))
	kernel = filepath.Join(dir, "vmlinuz-6.1.0-0-test")
	if err := os.WriteFile(kernel, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	vmrun = filepath.Join(dir, "vmrun")
	script := "#!/bin/sh\n" + pre + "\nshift 4\nexec \"$@\" -test.run='^$'\n"
	if err := os.WriteFile(vmrun, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return kernel, vmrun
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
