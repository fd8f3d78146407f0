package testkit

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// WaitRingReader waits until process pid reads a BPF ring buffer: one of
// its epoll instances watches a BPF map of type BPF_MAP_TYPE_RINGBUF, as
// /proc/PID/fdinfo shows. bpfkit's tracers make that reader only once every
// program is attached, so from then on the tracer sees a workload the test
// runs: the test can run it once and expect exactly its events, rather
// than repeat it until something shows.
func WaitRingReader(t testing.TB, pid int) {
	t.Helper()
	// Loading and attaching take long in an emulated VM.
	if !waitFor(2*time.Minute, func() bool { return readsRing(t, pid) }) {
		t.Fatalf("process %d did not start reading a BPF ring buffer within 2 minutes", pid)
	}
}

func readsRing(t testing.TB, pid int) bool {
	dir := fmt.Sprintf("/proc/%d/", pid)
	fds, err := os.ReadDir(dir + "fd")
	if err != nil {
		t.Fatalf("process %d: %v", pid, err)
	}
	for _, fd := range fds {
		if link, _ := os.Readlink(dir + "fd/" + fd.Name()); link != "anon_inode:[eventpoll]" {
			continue
		}
		info, _ := os.ReadFile(dir + "fdinfo/" + fd.Name())
		for _, line := range strings.Split(string(info), "\n") {
			// tfd:        5 events:       19 data: ...
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "tfd:" {
				continue
			}
			link, _ := os.Readlink(dir + "fd/" + f[1])
			target, _ := os.ReadFile(dir + "fdinfo/" + f[1])
			if link == "anon_inode:bpf-map" && strings.Contains(string(target), "map_type:\t27\n") { // BPF_MAP_TYPE_RINGBUF
				return true
			}
		}
	}
	return false
}
