package testkit

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExitProgram(t *testing.T) {
	path := ExitProgram(t)
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("the program is not an ELF file Go can read: %v", err)
	}
	f.Close()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 0},
		{[]string{""}, 0},
		{[]string{"0"}, 0},
		{[]string{"7"}, 7},
		{[]string{"storm-1234"}, 1234 % 256},
		{[]string{"storm-4999"}, 4999 % 256},
		{[]string{"a1b2c3"}, 123},
		{[]string{"255", "ignored 9"}, 255},
		{[]string{"256"}, 0},
	} {
		err := exec.Command(path, tc.args...).Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("run %s %q: %v", path, tc.args, err)
		}
		if code != tc.want {
			t.Errorf("%s %q exited %d, want %d", path, tc.args, code, tc.want)
		}
	}
}

// TestPauseProgram: the program waits in pause(2) until a signal kills it.
func TestPauseProgram(t *testing.T) {
	cmd := exec.Command(PauseProgram(t))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// SYS_pause is 34 on x86-64: /proc shows the call while it waits.
	if !WaitFor(20*time.Second, func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", cmd.Process.Pid))
		return strings.HasPrefix(string(b), "34 ")
	}) {
		t.Fatalf("bk-pause %d is not in pause(2)", cmd.Process.Pid)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("bk-pause ended with %v, want killed by SIGTERM", err)
	}
}
