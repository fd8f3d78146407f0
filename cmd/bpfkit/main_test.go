package main

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/pkg/loader/testkit"
)

// The CLI tests run bpfkit as a child: the test binary re-executed as
// run(), so no bpfkit binary and no Go toolchain are needed.
func TestMain(m *testing.M) {
	testkit.Register("bpfkit", func(args []string) int {
		os.Args = append([]string{"bpfkit"}, args...)
		return run()
	})
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
	testkit.Main(m)
}
