package testkit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Block devices for tests: loop devices over files in /dev/shm, the
// kernel's own counts of their requests, and a child process that does
// direct I/O on one when released (the block I/O tools' workload).

func init() { Register("testkit.io", ioChild) }

// minorBits is MINORBITS: the kernel's dev_t is major<<20 | minor.
const minorBits = 20

// Loop is a loop device the test created over a file in /dev/shm (or
// over another loop device: NewDirectLoop).
type Loop struct {
	N       int
	Name    string // loopN
	Path    string // /dev/loopN
	Dev     uint32 // kernel dev_t
	Backing string // the file (or device) it reads and writes
	f       *os.File
}

// NewLoop creates a loop device over a new file of size bytes; it is
// detached and removed, and the file deleted, when the test ends (also
// when it fails).
func NewLoop(t testing.TB, size int64) *Loop { return makeLoop(t, size, 0) }

// PartStart is where NewPartitionedLoop's one partition starts (sectors).
const PartStart = 2048

// NewPartitionedLoop is NewLoop with one partition, from sector PartStart
// to the end, added with BLKPG_ADD_PARTITION as partx does (no partition
// table: some kernels, this host's among them, parse none): it appears as
// loopNp1. LO_FLAGS_PARTSCAN lets the loop device have partitions.
func NewPartitionedLoop(t testing.TB, size int64) *Loop {
	return makeLoop(t, size, unix.LO_FLAGS_PARTSCAN)
}

func makeLoop(t testing.TB, size int64, flags uint32) *Loop {
	t.Helper()
	dir := "/dev/shm" // tmpfs: the loop device's own I/O stays in memory
	if _, err := os.Stat(dir); err != nil {
		dir = t.TempDir()
	}
	back, err := os.CreateTemp(dir, "bpfkit-bio-*.img")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(back.Name()) })
	defer back.Close() // the loop device holds its own reference
	if err := back.Truncate(size); err != nil {
		t.Fatal(err)
	}
	l := configureLoop(t, back, flags)
	if flags&unix.LO_FLAGS_PARTSCAN != 0 {
		part := unix.BlkpgPartition{Start: PartStart * 512, Length: size - PartStart*512, Pno: 1}
		arg := unix.BlkpgIoctlArg{Op: unix.BLKPG_ADD_PARTITION, Datalen: int32(unsafe.Sizeof(part)), Data: (*byte)(unsafe.Pointer(&part))}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, l.f.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg))); errno != 0 {
			t.Fatalf("BLKPG_ADD_PARTITION on %s: %v", l.Path, errno)
		}
	}
	l.settle(t)
	return l
}

// NewDirectLoop creates a loop device over lower in direct I/O mode: it
// reads and writes lower with O_DIRECT, asynchronously, as loop does a
// backing file that supports it (tmpfs does not before 6.6; a block
// device always does). Its size is lower's when created: if lower then
// shrinks (Shrink), a read of it that crosses lower's new end gets a short
// read from lower, and loop completes the part it got and requeues the
// request for the rest (lo_complete_rq), which then fails with EIO. That
// is a requeue the test causes, on every kernel. Removed when the test
// ends, before lower.
func NewDirectLoop(t testing.TB, lower *Loop) *Loop {
	t.Helper()
	back, err := os.OpenFile(lower.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	l := configureLoop(t, back, unix.LO_FLAGS_DIRECT_IO)
	if dio := l.sysfs(t, "loop/dio"); dio != "1" {
		t.Fatalf("%s over %s: direct I/O is %q, want 1", l.Name, lower.Name, dio)
	}
	l.settle(t)
	return l
}

// Shrink cuts l's backing file to size bytes and tells the loop device
// (LOOP_SET_CAPACITY): the device ends there. A loop device over this one
// keeps its size.
func (l *Loop) Shrink(t testing.TB, size int64) {
	t.Helper()
	if err := os.Truncate(l.Backing, size); err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetInt(int(l.f.Fd()), unix.LOOP_SET_CAPACITY, 0); err != nil {
		t.Fatalf("LOOP_SET_CAPACITY %s: %v", l.Path, err)
	}
	if got := l.sysfs(t, "size"); got != strconv.FormatInt(size/512, 10) {
		t.Fatalf("%s has %s sectors after LOOP_SET_CAPACITY, want %d", l.Name, got, size/512)
	}
}

// configureLoop makes a free loop device read and write back.
func configureLoop(t testing.TB, back *os.File, flags uint32) *Loop {
	t.Helper()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("no loop device driver (modprobe loop; vmtest loads it): %v", err)
	}
	defer ctl.Close()
	for try := 0; try < 20; try++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			t.Fatalf("LOOP_CTL_GET_FREE: %v", err)
		}
		path := fmt.Sprintf("/dev/loop%d", n)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatalf("open %s: %v", path, err)
		}
		cfg := unix.LoopConfig{Fd: uint32(back.Fd()), Size: 512}
		cfg.Info.Flags = flags
		err = unix.IoctlLoopConfigure(int(f.Fd()), &cfg)
		if errors.Is(err, unix.EBUSY) { // taken meanwhile by someone else
			f.Close()
			continue
		}
		if err != nil {
			f.Close()
			t.Fatalf("LOOP_CONFIGURE %s: %v", path, err)
		}
		l := &Loop{N: n, Name: fmt.Sprintf("loop%d", n), Path: path, Backing: back.Name(), f: f}
		t.Cleanup(func() { l.remove(t, f) })
		l.Dev = l.devNum(t)
		return l
	}
	t.Fatal("no free loop device after 20 tries")
	return nil
}

func (l *Loop) remove(t testing.TB, f *os.File) {
	if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0); err != nil {
		t.Errorf("LOOP_CLR_FD %s: %v", l.Path, err)
	}
	f.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		t.Errorf("remove %s: %v", l.Path, err)
		return
	}
	defer ctl.Close()
	// The detach completes when the last opener has closed: retry.
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := unix.IoctlSetInt(int(ctl.Fd()), unix.LOOP_CTL_REMOVE, l.N)
		if err == nil || !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			if err != nil {
				t.Errorf("LOOP_CTL_REMOVE %s: %v", l.Path, err)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Partition returns partition n of l (loopNpn).
func (l *Loop) Partition(t testing.TB, n int) *Loop {
	t.Helper()
	name := fmt.Sprintf("%sp%d", l.Name, n)
	p := &Loop{N: l.N, Name: name, Path: "/dev/" + name}
	if _, err := os.Stat(p.Path); err != nil {
		t.Fatalf("partition %s: %v", name, err)
	}
	p.Dev = p.devNum(t)
	return p
}

// sysfs reads a file of l's directory in /sys/class/block, trimmed.
func (l *Loop) sysfs(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/class/block", l.Name, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// SetScheduler gives l's queue the I/O scheduler name ("mq-deadline";
// vmtest loads its module where the kernel builds it as one). It returns
// false, and changes nothing, where the device is offered no scheduler
// (its queue/scheduler says only "[none]": loop on 5.10 takes none; a
// kernel may also have none loaded).
func (l *Loop) SetScheduler(t testing.TB, name string) bool {
	t.Helper()
	if l.sysfs(t, "queue/scheduler") == "[none]" {
		return false
	}
	if err := os.WriteFile(filepath.Join("/sys/class/block", l.Name, "queue/scheduler"), []byte(name), 0); err != nil {
		t.Fatalf("I/O scheduler %s for %s: %v", name, l.Name, err)
	}
	if got := l.sysfs(t, "queue/scheduler"); !strings.Contains(got, "["+name+"]") {
		t.Fatalf("%s/queue/scheduler is %q after choosing %s", l.Name, got, name)
	}
	return true
}

// Tags is how many requests the loop driver takes at once (the tags of
// its one hardware queue, the module's hw_queue_depth): with a scheduler,
// more wait in it, started but not issued.
func (l *Loop) Tags(t testing.TB) int {
	t.Helper()
	n, err := strconv.Atoi(l.sysfs(t, "mq/0/nr_tags"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Issued is how many requests the driver has now, issued and not
// completed: /sys/block/NAME/inflight, the requests holding a driver tag
// in the started state, on every kernel (the stat file's in_flight counts
// those that wait in a scheduler too on some, 6.12 among them).
func (l *Loop) Issued(t testing.TB) uint64 {
	t.Helper()
	var r, w uint64
	if _, err := fmt.Sscan(l.sysfs(t, "inflight"), &r, &w); err != nil {
		t.Fatalf("%s/inflight: %v", l.Name, err)
	}
	return r + w
}

func (l *Loop) devNum(t testing.TB) uint32 {
	b := l.sysfs(t, "dev")
	var major, minor uint32
	if _, err := fmt.Sscanf(b, "%d:%d", &major, &minor); err != nil {
		t.Fatalf("%s/dev: %q", l.Name, b)
	}
	return major<<minorBits | minor
}

// BlockStat is /sys/block/NAME/stat: the kernel's own count of the
// requests the device completed (Documentation/block/stat.rst).
type BlockStat struct {
	Reads, ReadSectors, Writes, WriteSectors, InFlight uint64
}

func (l *Loop) Stat(t testing.TB) BlockStat {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/class/block", l.Name, "stat"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) < 9 {
		t.Fatalf("%s/stat: %q", l.Name, b)
	}
	n := func(i int) uint64 {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			t.Fatalf("%s/stat field %d: %q", l.Name, i, f[i])
		}
		return v
	}
	return BlockStat{Reads: n(0), ReadSectors: n(2), Writes: n(4), WriteSectors: n(6), InFlight: n(8)}
}

func (s BlockStat) Sub(o BlockStat) BlockStat {
	return BlockStat{s.Reads - o.Reads, s.ReadSectors - o.ReadSectors, s.Writes - o.Writes, s.WriteSectors - o.WriteSectors, s.InFlight}
}

// settle waits until nothing else (udev's probe of a new device) does I/O
// on the device: its counters unchanged for 300ms, nothing in flight.
func (l *Loop) settle(t testing.TB) {
	t.Helper()
	// Where udevd runs (vng's guests run the host's), its workers probe a
	// device that was opened for writing once it is closed (blkid reads,
	// seen in TestPartition under vng): hold its queue while the test
	// runs, after what is queued now is done. Without udevd, both fail
	// at once and nothing changes.
	if udevadm, err := exec.LookPath("udevadm"); err == nil {
		_ = exec.Command(udevadm, "settle", "-t", "30").Run()
		if exec.Command(udevadm, "control", "--stop-exec-queue").Run() == nil {
			t.Cleanup(func() { _ = exec.Command(udevadm, "control", "--start-exec-queue").Run() })
		}
	}
	prev := l.Stat(t)
	still := time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		s := l.Stat(t)
		if s != prev || s.InFlight != 0 {
			prev, still = s, time.Now()
			continue
		}
		if time.Since(still) > 300*time.Millisecond {
			return
		}
	}
	t.Fatalf("%s: I/O by someone else did not stop", l.Name)
}

// IOOp is one direct read or write of the workload.
type IOOp struct {
	Write  bool
	Offset int64 // bytes
	Size   int
	// Fails: the kernel must fail it with EIO (a read of a NewDirectLoop
	// past the end of what backs it); any other error fails the child.
	Fails bool
}

func (o IOOp) String() string {
	op := "r"
	if o.Write {
		op = "w"
	}
	if o.Fails {
		op += "f"
	}
	return fmt.Sprintf("%s:%d:%d", op, o.Offset, o.Size)
}

func parseIOOp(s string) (IOOp, error) {
	f := strings.Split(s, ":")
	if len(f) != 3 {
		return IOOp{}, fmt.Errorf("op %q", s)
	}
	off, err1 := strconv.ParseInt(f[1], 10, 64)
	size, err2 := strconv.Atoi(f[2])
	kind, fails := strings.CutSuffix(f[0], "f")
	if err1 != nil || err2 != nil || (kind != "r" && kind != "w") {
		return IOOp{}, fmt.Errorf("op %q", s)
	}
	return IOOp{Write: kind == "w", Offset: off, Size: size, Fails: fails}, nil
}

// check says whether an op's outcome (bytes done, error) is the one it
// must have.
func (o IOOp) check(n int, err error) error {
	if o.Fails {
		if !errors.Is(err, unix.EIO) {
			return fmt.Errorf("%v: %d bytes, %v; want EIO", o, n, err)
		}
		return nil
	}
	if err != nil || n != o.Size {
		return fmt.Errorf("%v: %d bytes, %v", o, n, err)
	}
	return nil
}

// ioChild runs in a child process: args are its thread name, a device,
// "sync" or "aio", and ops. It opens the device with O_DIRECT, blocks
// reading its stdin until released, then does the ops one after the other
// on one thread (sync), or submits them all at once with io_submit, says
// "submitted" and waits for them (aio); then it says "done".
func ioChild(args []string) int {
	runtime.LockOSThread()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "testkit.io:", err); return 1 }
	name := append([]byte(args[0]), 0)
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0); err != nil {
		return fail(err)
	}
	fd, err := unix.Open(args[1], unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	aio := args[2] == "aio"
	var ops []IOOp
	slot := 0 // each op's buffer (its own with aio), page aligned as O_DIRECT wants
	for _, a := range args[3:] {
		o, err := parseIOOp(a)
		if err != nil {
			return fail(err)
		}
		ops = append(ops, o)
		slot = max(slot, (o.Size+4095)&^4095)
	}
	size := slot
	if aio {
		size *= len(ops)
	}
	buf, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return fail(err)
	}
	for i := range buf {
		buf[i] = byte(i)
	}
	var b [1]byte
	if n, _ := unix.Read(0, b[:]); n != 1 {
		return fail(errors.New("not released"))
	}
	if aio {
		err = submitAll(fd, ops, buf, slot)
	} else {
		for _, o := range ops {
			var n int
			if o.Write {
				n, err = unix.Pwrite(fd, buf[:o.Size], o.Offset)
			} else {
				n, err = unix.Pread(fd, buf[:o.Size], o.Offset)
			}
			if err = o.check(n, err); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fail(err)
	}
	unix.Write(1, []byte("done\n"))
	return 0
}

// iocb and ioEvent are the kernel's struct iocb and io_event
// (include/uapi/linux/aio_abi.h, little-endian).
type iocb struct {
	data   uint64
	_      uint32 // aio_key
	_      int32  // aio_rw_flags
	opcode uint16
	_      int16 // aio_reqprio
	fd     uint32
	buf    uint64
	nbytes uint64
	offset int64
	_      uint64 // aio_reserved2
	_      uint32 // aio_flags
	_      uint32 // aio_resfd
}

type ioEvent struct {
	data uint64
	_    uint64 // obj
	res  int64
	_    int64 // res2
}

const iocbCmdPread, iocbCmdPwrite = 0, 1

// submitAll submits every op at once with io_submit (op i's buffer at
// i*slot of buf), says "submitted", then waits for all of them.
func submitAll(fd int, ops []IOOp, buf []byte, slot int) error {
	var ctx uint64
	if _, _, e := unix.Syscall(unix.SYS_IO_SETUP, uintptr(len(ops)), uintptr(unsafe.Pointer(&ctx)), 0); e != 0 {
		return fmt.Errorf("io_setup: %w", e)
	}
	defer unix.Syscall(unix.SYS_IO_DESTROY, uintptr(ctx), 0, 0)
	cbs := make([]iocb, len(ops))
	ptrs := make([]*iocb, len(ops))
	for i, o := range ops {
		cbs[i] = iocb{data: uint64(i), opcode: iocbCmdPread, fd: uint32(fd),
			buf: uint64(uintptr(unsafe.Pointer(&buf[i*slot]))), nbytes: uint64(o.Size), offset: o.Offset}
		if o.Write {
			cbs[i].opcode = iocbCmdPwrite
		}
		ptrs[i] = &cbs[i]
	}
	n, _, e := unix.Syscall(unix.SYS_IO_SUBMIT, uintptr(ctx), uintptr(len(ptrs)), uintptr(unsafe.Pointer(&ptrs[0])))
	runtime.KeepAlive(cbs)
	if e != 0 || int(n) != len(ops) {
		return fmt.Errorf("io_submit: %d of %d submitted, %v", n, len(ops), e)
	}
	unix.Write(1, []byte("submitted\n"))
	evs := make([]ioEvent, len(ops))
	for got := 0; got < len(ops); {
		n, _, e := unix.Syscall6(unix.SYS_IO_GETEVENTS, uintptr(ctx), 1, uintptr(len(ops)-got), uintptr(unsafe.Pointer(&evs[got])), 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return fmt.Errorf("io_getevents: %w", e)
		}
		got += int(n)
	}
	for _, ev := range evs {
		o := ops[ev.data]
		var err error
		if ev.res < 0 {
			err = unix.Errno(-ev.res)
		}
		if err = o.check(int(max(ev.res, 0)), err); err != nil {
			return err
		}
	}
	return nil
}

// IOProc is a running ioChild.
type IOProc struct {
	PID  uint32
	Comm string
	Ops  []IOOp
	in   io.WriteCloser
	out  *bufio.Reader
	wait func() error
}

// StartIO starts a child that will do ops on dev as comm, one after the
// other, in cgroup (a cgroup v2 directory; "" to stay), blocked until
// release.
func StartIO(t testing.TB, comm string, l *Loop, cgroup string, ops []IOOp) *IOProc {
	t.Helper()
	return startIO(t, comm, l, cgroup, "sync", ops)
}

// StartAIO is StartIO with the ops submitted all at once (io_submit), so
// that they are all in flight together; Submitted says when they are.
func StartAIO(t testing.TB, comm string, l *Loop, cgroup string, ops []IOOp) *IOProc {
	t.Helper()
	return startIO(t, comm, l, cgroup, "aio", ops)
}

func startIO(t testing.TB, comm string, l *Loop, cgroup, mode string, ops []IOOp) *IOProc {
	t.Helper()
	args := []string{comm, l.Path, mode}
	for _, o := range ops {
		args = append(args, o.String())
	}
	cmd := Command(t, "testkit.io", args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var werr error
	p := &IOProc{PID: uint32(cmd.Process.Pid), Comm: comm, Ops: ops, in: in, out: bufio.NewReader(out),
		wait: func() error { once.Do(func() { werr = cmd.Wait() }); return werr }}
	t.Cleanup(func() { cmd.Process.Kill(); p.wait() })
	WaitStdinRead(t, cmd.Process.Pid)
	if cgroup != "" {
		if err := os.WriteFile(filepath.Join(cgroup, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			t.Fatalf("move %d into %s: %v", cmd.Process.Pid, cgroup, err)
		}
	}
	return p
}

func (p *IOProc) Release(t testing.TB) {
	t.Helper()
	if _, err := p.in.Write([]byte{'g'}); err != nil {
		t.Fatalf("release %d: %v", p.PID, err)
	}
}

// Submitted waits until a StartAIO child has submitted all its ops: each
// is a request the kernel has (allocated, and inserted or issued), unless
// the device merged some.
func (p *IOProc) Submitted(t testing.TB) {
	t.Helper()
	if line, err := p.out.ReadString('\n'); err != nil || line != "submitted\n" {
		t.Fatalf("io child %d: %q, %v", p.PID, line, err)
	}
}

// Finish waits until the child has done its ops and exited.
func (p *IOProc) Finish(t testing.TB) {
	t.Helper()
	line, err := p.out.ReadString('\n')
	if err != nil || line != "done\n" {
		t.Fatalf("io child %d: %q, %v", p.PID, line, err)
	}
	if err := p.wait(); err != nil {
		t.Fatalf("io child %d: %v", p.PID, err)
	}
}
