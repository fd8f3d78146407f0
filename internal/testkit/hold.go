package testkit

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// userfaultfd(2) (include/uapi/linux/userfaultfd.h): x/sys has the
// syscall number only.
const (
	uffdAPI                = 0xaa
	uffdioAPI              = 0xc018aa3f // _IOWR(0xaa, 0x3f, struct uffdio_api)
	uffdioRegister         = 0xc020aa00 // _IOWR(0xaa, 0x00, struct uffdio_register)
	uffdioZeropage         = 0xc020aa04 // _IOWR(0xaa, 0x04, struct uffdio_zeropage)
	uffdioRegisterModeMiss = 1
	// struct uffd_msg: 32 bytes, the event first, a page fault's
	// address at 16.
	uffdMsgSize         = 32
	uffdEventPagefault  = 0x12
	uffdPagefaultAddrAt = 16
)

const (
	holdPage    = 4096
	holdTimeout = 30 * time.Second
)

type uffdioAPIArg struct{ api, features, ioctls uint64 }

type uffdioRange struct{ start, len uint64 }

type uffdioRegisterArg struct {
	rng    uffdioRange
	mode   uint64
	ioctls uint64
}

type uffdioZeropageArg struct {
	rng      uffdioRange
	mode     uint64
	zeropage int64
}

// HoldWrites stops l's writes to its backing file until release is
// called (at the latest when the test ends, before l is removed): a
// thread of the test writes one page to the file from memory that is
// missing under userfaultfd, so it sleeps in the page fault while it
// holds the file's inode lock (tmpfs, like every generic_perform_write,
// faults the source in under it). The loop driver's first write to the
// file then waits for the lock, and so does every request queued behind
// it on the same loop worker: they stay in flight, issued, until release.
// HoldWrites returns once the thread is in the fault. The page written is
// the file's last, with zeros (what a new file holds): the workload must
// not use it.
func (l *Loop) HoldWrites(t testing.TB) (release func()) {
	t.Helper()
	fd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK, 0, 0)
	if e != 0 {
		t.Fatalf("userfaultfd: %v", e)
	}
	uffd := int(fd)
	api := uffdioAPIArg{api: uffdAPI}
	if err := ioctlPtr(uffd, uffdioAPI, unsafe.Pointer(&api)); err != nil {
		unix.Close(uffd)
		t.Fatalf("UFFDIO_API: %v", err)
	}
	mem, err := unix.Mmap(-1, 0, holdPage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		unix.Close(uffd)
		t.Fatal(err)
	}
	addr := uint64(uintptr(unsafe.Pointer(&mem[0])))
	reg := uffdioRegisterArg{rng: uffdioRange{addr, holdPage}, mode: uffdioRegisterModeMiss}
	if err := ioctlPtr(uffd, uffdioRegister, unsafe.Pointer(&reg)); err != nil {
		unix.Munmap(mem)
		unix.Close(uffd)
		t.Fatalf("UFFDIO_REGISTER: %v", err)
	}
	back, err := os.OpenFile(l.Backing, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := back.Stat()
	if err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread stays in the kernel until release
		n, err := unix.Pwrite(int(back.Fd()), mem, st.Size()-holdPage)
		if err == nil && n != holdPage {
			err = fmt.Errorf("%d bytes", n)
		}
		wrote <- err
	}()
	var once sync.Once
	release = func() {
		once.Do(func() {
			zp := uffdioZeropageArg{rng: uffdioRange{addr, holdPage}}
			if err := ioctlPtr(uffd, uffdioZeropage, unsafe.Pointer(&zp)); err != nil {
				t.Errorf("UFFDIO_ZEROPAGE: %v", err)
			}
			if err := <-wrote; err != nil {
				t.Errorf("write to %s from the held page: %v", l.Backing, err)
			}
			back.Close()
			unix.Munmap(mem)
			unix.Close(uffd)
		})
	}
	t.Cleanup(release)
	// The fault's message says the writer sleeps in it, holding the lock.
	pfd := []unix.PollFd{{Fd: int32(uffd), Events: unix.POLLIN}}
	for deadline := time.Now().Add(holdTimeout); ; {
		n, err := unix.Poll(pfd, int(time.Until(deadline).Milliseconds()))
		if err == unix.EINTR && time.Now().Before(deadline) {
			continue // the Go runtime's signals
		}
		if err != nil || n != 1 {
			t.Fatalf("no page fault from the write to %s in %v: %d, %v", l.Backing, holdTimeout, n, err)
		}
		break
	}
	var msg [uffdMsgSize]byte
	if n, err := unix.Read(uffd, msg[:]); err != nil || n != uffdMsgSize || msg[0] != uffdEventPagefault {
		t.Fatalf("userfaultfd message: % x (%d bytes), %v", msg, n, err)
	}
	if a := *(*uint64)(unsafe.Pointer(&msg[uffdPagefaultAddrAt])); a&^(holdPage-1) != addr {
		t.Fatalf("page fault at %#x, the held page is at %#x", a, addr)
	}
	return release
}

func ioctlPtr(fd int, req uint, arg unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg)); e != 0 {
		return e
	}
	return nil
}
