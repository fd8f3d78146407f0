package vmtest

// VM tests: they boot real Debian kernels in qemu. They need root (the
// project rule: privileged tests really run as root), qemu and network access
// for the first kernel download. Without CI=true they skip when that is
// missing; with CI=true they fail instead.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/vmtest/guest"
)

// vmTestKernel is the kernel the VM tests boot: bookworm's 6.1 cloud kernel
// is the smallest download and boots fastest.
const vmTestKernel = "6.1"

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

var (
	vmOnce   sync.Once
	vmKernel *Kernel
	vmInit   string
	vmErr    error
)

// requireVM returns the test kernel, fetching it into .vmtest/ on first use.
func requireVM(t *testing.T) *Kernel {
	t.Helper()
	if testing.Short() {
		skipOrFail(t, "VM test in -short mode")
	}
	if os.Geteuid() != 0 {
		skipOrFail(t, "VM tests run as root (uid %d)", os.Geteuid())
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		skipOrFail(t, "qemu-system-x86_64 not installed (apt-get install qemu-system-x86): %v", err)
	}
	vmOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		vmKernel, vmErr = NewCache("").Resolve(ctx, vmTestKernel)
		if vmErr == nil {
			vmInit, vmErr = FindInit(ctx)
		}
	})
	if vmErr != nil {
		skipOrFail(t, "kernel %s: %v", vmTestKernel, vmErr)
	}
	return vmKernel
}

var fixtureMu sync.Mutex

// buildFixture compiles vmtest/testdata/NAME into a static test binary.
func buildFixture(t *testing.T, name string) (bin, dir string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(t.TempDir(), name+".test")
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	cmd := exec.Command("go", "test", "-c", "-o", bin, "./testdata/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test -c ./testdata/%s: %v\n%s", name, err, out)
	}
	return bin, dir
}

func runFixture(t *testing.T, name string, mod func(*Options)) (Result, string) {
	t.Helper()
	k := requireVM(t)
	bin, dir := buildFixture(t, name)
	var out, errOut bytes.Buffer
	o := Options{
		Kernel:  k,
		Binary:  bin,
		Args:    []string{"-test.v"},
		Env:     GuestEnv([]string{"BPFKIT_FIXTURE=42", "BPFKIT_FIXTURE_KERNEL=" + vmTestKernel}),
		Dir:     dir,
		Modules: DefaultModules,
		Init:    vmInit,
		Timeout: 2 * time.Minute,
		Stdout:  &out,
		Stderr:  &errOut,
	}
	if mod != nil {
		mod(&o)
	}
	res := Run(context.Background(), o)
	t.Logf("%s on %s: exit %d after %.1fs", name, k.Release, res.Code, res.Duration.Seconds())
	if testing.Verbose() {
		t.Logf("output:\n%s\nstderr:\n%s", out.String(), errOut.String())
	}
	return res, out.String() + errOut.String()
}

func TestVMPass(t *testing.T) {
	t.Parallel()
	res, out := runFixture(t, "pass", nil)
	if res.Code != 0 {
		t.Fatalf("exit %d, want 0\n%s", res.Code, out)
	}
	for _, want := range []string{"--- PASS: TestGuest", "--- PASS: TestMounts", "--- PASS: TestTestdata", "uname -r: " + vmTestKernel} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestVMFail(t *testing.T) {
	t.Parallel()
	res, out := runFixture(t, "fail", nil)
	if res.Code != 1 {
		t.Fatalf("exit %d, want 1\n%s", res.Code, out)
	}
	if !strings.Contains(out, "--- FAIL: TestFails") {
		t.Errorf("output lacks the failure:\n%s", out)
	}
	if !strings.Contains(res.Console, guest.StartedMarker+"fail.test") || strings.Contains(out, "booting it once more") {
		t.Errorf("a test that started and failed is not run twice; console:\n%s\noutput:\n%s", res.Console, out)
	}
}

func TestVMExitCode(t *testing.T) {
	t.Parallel()
	res, out := runFixture(t, "fail", func(o *Options) { o.Env = append(o.Env, "BPFKIT_FIXTURE_EXIT=3") })
	if res.Code != 3 {
		t.Fatalf("exit %d, want 3\n%s", res.Code, out)
	}
}

func TestVMTimeout(t *testing.T) {
	t.Parallel()
	res, out := runFixture(t, "sleep", func(o *Options) { o.Timeout = 25 * time.Second })
	if res.Code != ExitTimeout {
		t.Fatalf("exit %d, want %d\n%s", res.Code, ExitTimeout, out)
	}
	if !strings.Contains(out, "sleeping") {
		t.Errorf("output before the timeout was lost:\n%s", out)
	}
}

func TestVMBrokenCmdline(t *testing.T) {
	t.Parallel()
	// The kernel cannot find the init and panics; no status line.
	res, out := runFixture(t, "pass", func(o *Options) { o.Cmdline = "rdinit=/nonexistent" })
	if res.Code != ExitInfra {
		t.Fatalf("exit %d, want %d\n%s", res.Code, ExitInfra, out)
	}
	if !strings.Contains(res.Console, "Kernel panic") {
		t.Errorf("console lacks the panic:\n%s", res.Console)
	}
	// It stopped before the test started: booted once more, not again.
	if n := strings.Count(out, "booting it once more"); n != 1 {
		t.Errorf("booted again %d times, want 1:\n%s", n, out)
	}
}

func TestVMNoExec(t *testing.T) {
	t.Parallel()
	k := requireVM(t)
	notELF := filepath.Join(t.TempDir(), "x.test")
	os.WriteFile(notELF, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	var errOut bytes.Buffer
	res := Run(context.Background(), Options{Kernel: k, Binary: notELF, Init: vmInit, Stdout: &errOut, Stderr: &errOut})
	if res.Code != ExitNoExec {
		t.Fatalf("exit %d, want %d\n%s", res.Code, ExitNoExec, errOut.String())
	}
}

// TestGoTestExec runs fixtures through the real vmrun command as go test -exec,
// checking that pass/fail and -json output survive the VM.
func TestGoTestExec(t *testing.T) {
	t.Parallel()
	k := requireVM(t)
	vmrun := filepath.Join(t.TempDir(), "vmrun")
	if out, err := exec.Command("go", "build", "-o", vmrun, "./cmd/vmrun").CombinedOutput(); err != nil {
		t.Fatalf("build vmrun: %v\n%s", err, out)
	}
	cmd := exec.Command("go", "test", "-count=1", "-json", "-exec", vmrun+" -kernel "+k.Root, "./testdata/pass", "./testdata/fail")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "VMTEST_INIT="+vmInit, "BPFKIT_FIXTURE=42", "BPFKIT_FIXTURE_KERNEL="+vmTestKernel)
	out, err := cmd.Output()
	if err == nil {
		t.Errorf("go test succeeded, but the fail fixture fails")
	}
	byPkg := map[string]*bytes.Buffer{}
	for _, line := range strings.Split(string(out), "\n") {
		for _, p := range []string{"testdata/pass", "testdata/fail"} {
			if strings.Contains(line, `"Package":"`+ModulePath+"/vmtest/"+p+`"`) {
				if byPkg[p] == nil {
					byPkg[p] = new(bytes.Buffer)
				}
				byPkg[p].WriteString(line + "\n")
			}
		}
	}
	for p, want := range map[string]string{"testdata/pass": "pass", "testdata/fail": "fail"} {
		if byPkg[p] == nil {
			t.Errorf("%s: no events\n%s", p, out)
			continue
		}
		o, err := ParseTestJSON(byPkg[p])
		if err != nil {
			t.Fatal(err)
		}
		if o.Status != want {
			t.Errorf("%s: status %s, want %s\n%s", p, o.Status, want, o.Output)
		}
		if p == "testdata/fail" && (len(o.Failed) != 1 || len(o.Skipped) != 1 || len(o.Passed) != 1) {
			t.Errorf("fail fixture: passed %v failed %v skipped %v", o.Passed, o.Failed, o.Skipped)
		}
	}
}
