package testkit

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// TestRingReaderStaleEntry: an epoll entry made for a descriptor number
// that now holds a ring buffer, its own file still alive elsewhere, is not
// a ring reader; cilium/ebpf's reader on that ring is.
func TestRingReaderStaleEntry(t *testing.T) {
	RequireRoot(t)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[1])
	n := p[0]
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, n, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(n)}); err != nil {
		t.Fatal(err)
	}
	keep, err := unix.Dup(n) // the pipe lives on under another number
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(keep)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Number n now opens the ring; the epoll entry "tfd n" stays.
	if err := unix.Dup3(m.FD(), n, unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(n)
	if readsRing(t, os.Getpid()) {
		t.Fatal("an epoll entry for a pipe, under the number the ring buffer now has, counted as a ring reader")
	}
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if !readsRing(t, os.Getpid()) {
		t.Fatal("a ring buffer reader was not seen")
	}
}
