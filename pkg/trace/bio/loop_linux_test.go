package bio

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func init() { testkit.Register("bio.io", ioChild) }

// loopDev is a loop device the test created over a file in /dev/shm.
type loopDev struct {
	N    int
	Name string // loopN
	Path string // /dev/loopN
	Dev  uint32 // kernel dev_t
}

// newLoop creates a loop device over a new file of size bytes; it is
// detached and removed, and the file deleted, when the test ends (also
// when it fails).
func newLoop(t *testing.T, size int64) *loopDev { return makeLoop(t, size, 0) }

// partStart is where newPartitionedLoop's one partition starts (sectors).
const partStart = 2048

// newPartitionedLoop is newLoop with one partition, from sector partStart
// to the end, added with BLKPG_ADD_PARTITION as partx does (no partition
// table: some kernels, this host's among them, parse none): it appears as
// loopNp1. LO_FLAGS_PARTSCAN lets the loop device have partitions.
func newPartitionedLoop(t *testing.T, size int64) *loopDev {
	return makeLoop(t, size, unix.LO_FLAGS_PARTSCAN)
}

func makeLoop(t *testing.T, size int64, flags uint32) *loopDev {
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
		l := &loopDev{N: n, Name: fmt.Sprintf("loop%d", n), Path: path}
		t.Cleanup(func() { l.remove(t, f) })
		l.Dev = l.devNum(t)
		if flags&unix.LO_FLAGS_PARTSCAN != 0 {
			part := unix.BlkpgPartition{Start: partStart * 512, Length: size - partStart*512, Pno: 1}
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

func (l *loopDev) remove(t *testing.T, f *os.File) {
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

// partition returns partition n of l (loopNpn).
func (l *loopDev) partition(t *testing.T, n int) *loopDev {
	t.Helper()
	name := fmt.Sprintf("%sp%d", l.Name, n)
	p := &loopDev{N: l.N, Name: name, Path: "/dev/" + name}
	if _, err := os.Stat(p.Path); err != nil {
		t.Fatalf("partition %s: %v", name, err)
	}
	p.Dev = p.devNum(t)
	return p
}

func (l *loopDev) devNum(t *testing.T) uint32 {
	b, err := os.ReadFile(filepath.Join("/sys/class/block", l.Name, "dev"))
	if err != nil {
		t.Fatal(err)
	}
	var major, minor uint32
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d:%d", &major, &minor); err != nil {
		t.Fatalf("%s/dev: %q", l.Name, b)
	}
	return KernelDev(major, minor)
}

// blockStat is /sys/block/NAME/stat: the kernel's own count of the
// requests the device completed (Documentation/block/stat.rst).
type blockStat struct {
	Reads, ReadSectors, Writes, WriteSectors, InFlight uint64
}

func (l *loopDev) stat(t *testing.T) blockStat {
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
	return blockStat{Reads: n(0), ReadSectors: n(2), Writes: n(4), WriteSectors: n(6), InFlight: n(8)}
}

func (s blockStat) sub(o blockStat) blockStat {
	return blockStat{s.Reads - o.Reads, s.ReadSectors - o.ReadSectors, s.Writes - o.Writes, s.WriteSectors - o.WriteSectors, s.InFlight}
}

// settle waits until nothing else (udev's probe of a new device) does I/O
// on the device: its counters unchanged for 300ms, nothing in flight.
func (l *loopDev) settle(t *testing.T) {
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
	prev := l.stat(t)
	still := time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		s := l.stat(t)
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

// ioOp is one direct read or write of the workload.
type ioOp struct {
	Write  bool
	Offset int64 // bytes
	Size   int
}

func (o ioOp) String() string {
	op := "r"
	if o.Write {
		op = "w"
	}
	return fmt.Sprintf("%s:%d:%d", op, o.Offset, o.Size)
}

func parseOp(s string) (ioOp, error) {
	f := strings.Split(s, ":")
	if len(f) != 3 {
		return ioOp{}, fmt.Errorf("op %q", s)
	}
	off, err1 := strconv.ParseInt(f[1], 10, 64)
	size, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || (f[0] != "r" && f[0] != "w") {
		return ioOp{}, fmt.Errorf("op %q", s)
	}
	return ioOp{Write: f[0] == "w", Offset: off, Size: size}, nil
}

// ioChild runs in a child process: args are its thread name, a device and
// ops. It opens the device with O_DIRECT, blocks reading its stdin until
// released, then does the ops one after the other on one thread and says
// "done".
func ioChild(args []string) int {
	runtime.LockOSThread()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "bio.io:", err); return 1 }
	name := append([]byte(args[0]), 0)
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0); err != nil {
		return fail(err)
	}
	fd, err := unix.Open(args[1], unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	var ops []ioOp
	max := 0
	for _, a := range args[2:] {
		o, err := parseOp(a)
		if err != nil {
			return fail(err)
		}
		ops = append(ops, o)
		max = maxInt(max, o.Size)
	}
	// mmap'd memory is page aligned, as O_DIRECT wants.
	buf, err := unix.Mmap(-1, 0, max, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
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

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// ioProc is a running ioChild.
type ioProc struct {
	PID  uint32
	Comm string
	Ops  []ioOp
	in   io.WriteCloser
	out  *bufio.Reader
	wait func() error
}

// startIO starts a child that will do ops on dev as comm, in cgroup (a
// cgroup v2 directory; "" to stay), blocked until release.
func startIO(t *testing.T, comm string, l *loopDev, cgroup string, ops []ioOp) *ioProc {
	t.Helper()
	args := []string{comm, l.Path}
	for _, o := range ops {
		args = append(args, o.String())
	}
	cmd := testkit.Command(t, "bio.io", args...)
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
	p := &ioProc{PID: uint32(cmd.Process.Pid), Comm: comm, Ops: ops, in: in, out: bufio.NewReader(out),
		wait: func() error { once.Do(func() { werr = cmd.Wait() }); return werr }}
	t.Cleanup(func() { cmd.Process.Kill(); p.wait() })
	testkit.WaitStdinRead(t, cmd.Process.Pid)
	if cgroup != "" {
		if err := os.WriteFile(filepath.Join(cgroup, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			t.Fatalf("move %d into %s: %v", cmd.Process.Pid, cgroup, err)
		}
	}
	return p
}

func (p *ioProc) release(t *testing.T) {
	t.Helper()
	if _, err := p.in.Write([]byte{'g'}); err != nil {
		t.Fatalf("release %d: %v", p.PID, err)
	}
}

// finish waits until the child has done its ops and exited.
func (p *ioProc) finish(t *testing.T) {
	t.Helper()
	line, err := p.out.ReadString('\n')
	if err != nil || line != "done\n" {
		t.Fatalf("io child %d: %q, %v", p.PID, line, err)
	}
	if err := p.wait(); err != nil {
		t.Fatalf("io child %d: %v", p.PID, err)
	}
}

// newCgroup creates a cgroup v2 directory for the test and returns its
// path and id; it is removed when the test ends.
func newCgroup(t *testing.T, name string) (string, uint64) {
	t.Helper()
	root, err := loader.Cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, fmt.Sprintf("bpfkit-bio-%d-%s", os.Getpid(), name))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Its processes have been killed and reaped by now (cleanups
		// run last registered first).
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if err := os.Remove(dir); err == nil || time.Now().After(deadline) {
				if err != nil {
					t.Errorf("remove cgroup %s: %v", dir, err)
				}
				return
			}
		}
	})
	id, err := loader.CgroupID(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, id
}

// snooped is an Event copied out of the callback.
type snooped struct {
	PID            uint32
	Comm, RWBS     string
	Disk           string
	Sector         uint64
	Bytes          uint32
	Queue, Service time.Duration
	Cgroup         uint64
}

// snoop runs a Snoop with cfg in the background; the returned function
// stops it and returns every event, in completion order.
func snoop(t *testing.T, cfg Config) (stop func() ([]snooped, Stats)) {
	t.Helper()
	s, err := NewSnoop(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	var evs []snooped
	done := make(chan error, 1)
	go func() {
		_, err := s.Run(ctx, loader.StreamOptions{}, func(e *Event) error {
			evs = append(evs, snooped{PID: e.PID, Comm: string(e.Comm), RWBS: string(e.RWBS), Disk: e.Disk,
				Sector: e.Sector, Bytes: e.Bytes, Queue: e.Queue, Service: e.Service, Cgroup: e.Cgroup})
			return nil
		})
		done <- err
	}()
	return func() ([]snooped, Stats) {
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("biosnoop: %v", err)
		}
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return evs, st
	}
}

// kernelRq is a request as the kernel's own block_rq_complete trace event
// prints it (its rwbs from blk_fill_rwbs): an oracle independent of bpfkit.
type kernelRq struct {
	RWBS    string
	Sector  uint64
	Sectors uint32
}

var rqCompleteLine = regexp.MustCompile(`block_rq_complete: (\d+),(\d+) (\S+) \([^)]*\) (\d+) \+ (\d+)`)

// traceCompletions turns on the block_rq_complete trace event of l in a
// tracefs instance of its own; the returned function turns it off and
// returns the requests that completed meanwhile, in order.
func traceCompletions(t *testing.T, l *loopDev) func() []kernelRq {
	t.Helper()
	if err := loader.EnsureTracefs(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(loader.TracefsPath, "instances", fmt.Sprintf("bpfkit-bio-%d-%s", os.Getpid(), l.Name))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("tracefs instance: %v", err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	ev := filepath.Join(dir, "events/block/block_rq_complete")
	if err := os.WriteFile(filepath.Join(ev, "filter"), []byte(fmt.Sprintf("dev == %d", l.Dev)), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ev, "enable"), []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	return func() []kernelRq {
		t.Helper()
		if err := os.WriteFile(filepath.Join(ev, "enable"), []byte("0"), 0); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "trace"))
		if err != nil {
			t.Fatal(err)
		}
		var out []kernelRq
		for _, m := range rqCompleteLine.FindAllStringSubmatch(string(b), -1) {
			sector, _ := strconv.ParseUint(m[4], 10, 64)
			n, _ := strconv.ParseUint(m[5], 10, 32)
			out = append(out, kernelRq{RWBS: m[3], Sector: sector, Sectors: uint32(n)})
		}
		return out
	}
}
