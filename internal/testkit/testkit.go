// Package testkit is what bpfkit's kernel tests share: skips that become
// failures under CI=true, kernel version gates that catch regressions, and
// child processes (the test binary re-executed) that run a workload the
// test owns.
package testkit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// InCI reports whether the tests run under CI (CI=true), where no test may
// skip for lack of root or of a kernel feature.
func InCI() bool { return os.Getenv("CI") == "true" }

// Skip skips the test, or fails it under CI.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("would skip, but CI=true: %s", msg)
	}
	t.Skip(msg)
}

// RequireRoot skips (fails under CI) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root (run the tests with sudo)")
	}
}

// KernelVersion returns the running kernel's major and minor version.
func KernelVersion() (major, minor int) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return 0, 0
	}
	release := unix.ByteSliceToString(uts.Release[:])
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return 0, 0
	}
	major, _ = strconv.Atoi(parts[0])
	minor, _ = strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return major, minor
}

// KernelAtLeast reports whether the running kernel is major.minor or newer.
func KernelAtLeast(major, minor int) bool {
	ma, mi := KernelVersion()
	return ma > major || (ma == major && mi >= minor)
}

// RequireFeature handles a feature probe's result the way cilium/ebpf's
// tests do: if err is nil the test goes on; on a kernel older than
// major.minor it skips (fails under CI); on a newer one, where the feature
// should exist, it fails, so a regression cannot hide as a skip.
func RequireFeature(t testing.TB, feature string, major, minor int, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if KernelAtLeast(major, minor) {
		t.Fatalf("%s is missing on a kernel >= %d.%d: %v", feature, major, minor, err)
	}
	Skip(t, "%s needs Linux %d.%d: %v", feature, major, minor, err)
}

// Emulated reports whether the tests run in a VM without hardware
// acceleration (vmtest under TCG sets BPFKIT_VM_ACCEL), where every
// instruction is many times slower and timing margins must be wider.
func Emulated() bool { return os.Getenv("BPFKIT_VM_ACCEL") == "tcg" }
