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

// Loop is a loop device the test created over a file in /dev/shm.
type Loop struct {
	N    int
	Name string // loopN
	Path string // /dev/loopN
	Dev  uint32 // kernel dev_t
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
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("no loop device driver (modprobe loop; vmtest loads it): %v", err)
	}
	defer ctl.Close()
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
		l := &Loop{N: n, Name: fmt.Sprintf("loop%d", n), Path: path}
		t.Cleanup(func() { l.remove(t, f) })
		l.Dev = l.devNum(t)
		if flags&unix.LO_FLAGS_PARTSCAN != 0 {
			part := unix.BlkpgPartition{Start: PartStart * 512, Length: size - PartStart*512, Pno: 1}
			arg := unix.BlkpgIoctlArg{Op: unix.BLKPG_ADD_PARTITION, Datalen: int32(unsafe.Sizeof(part)), Data: (*byte)(unsafe.Pointer(&part))}
			if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg))); errno != 0 {
				t.Fatalf("BLKPG_ADD_PARTITION on %s: %v", path, errno)
			}
		}
		l.settle(t)
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

func (l *Loop) devNum(t testing.TB) uint32 {
	b, err := os.ReadFile(filepath.Join("/sys/class/block", l.Name, "dev"))
	if err != nil {
		t.Fatal(err)
	}
	var major, minor uint32
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d:%d", &major, &minor); err != nil {
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
}

func (o IOOp) String() string {
	op := "r"
	if o.Write {
		op = "w"
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
	if err1 != nil || err2 != nil || (f[0] != "r" && f[0] != "w") {
		return IOOp{}, fmt.Errorf("op %q", s)
	}
	return IOOp{Write: f[0] == "w", Offset: off, Size: size}, nil
}

// ioChild runs in a child process: args are its thread name, a device and
// ops. It opens the device with O_DIRECT, blocks reading its stdin until
// released, then does the ops one after the other on one thread and says
// "done".
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
	var ops []IOOp
	biggest := 0
	for _, a := range args[2:] {
		o, err := parseIOOp(a)
		if err != nil {
			return fail(err)
		}
		ops = append(ops, o)
		biggest = max(biggest, o.Size)
	}
	// mmap'd memory is page aligned, as O_DIRECT wants.
	buf, err := unix.Mmap(-1, 0, biggest, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
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
	for _, o := range ops {
		var n int
		if o.Write {
			n, err = unix.Pwrite(fd, buf[:o.Size], o.Offset)
		} else {
			n, err = unix.Pread(fd, buf[:o.Size], o.Offset)
		}
		if err != nil || n != o.Size {
			return fail(fmt.Errorf("%v: %d bytes, %v", o, n, err))
		}
	}
	unix.Write(1, []byte("done\n"))
	return 0
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

// StartIO starts a child that will do ops on dev as comm, in cgroup (a
// cgroup v2 directory; "" to stay), blocked until release.
func StartIO(t testing.TB, comm string, l *Loop, cgroup string, ops []IOOp) *IOProc {
	t.Helper()
	args := []string{comm, l.Path}
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
