package filetop_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/filetop"
)

func TestMain(m *testing.M) {
	testkit.Register("files", filesChild)
	testkit.Register("special", specialChild)
	testkit.Register("calls", callsChild)
	testkit.Main(m)
}

// The files workload, by file name in the test's directory.
const (
	aBytes, aWrites = 1_234_567, 301 // A: write, pwrite64, writev, pwritev, pwritev2
	bBytes, bReads  = 765_432, 187   // B: read, pread64, readv, preadv, preadv2
	cWrites         = 7              // C: 100 bytes each, unlinked while open
	lWrites         = 3              // L: 1000 bytes each, path > 300 bytes
	xWrites         = 50             // X: 10 bytes each
	yWrites         = 2              // Y: 50,000 bytes each
	zReads          = 30             // Z: 1000 bytes each
)

// chunks splits total into n sizes of at most 4096, the last taking the rest.
func chunks(total, n int) []int {
	sizes := make([]int, n)
	for i := range n - 1 {
		sizes[i] = 4096
	}
	sizes[n-1] = total - (n-1)*4096
	return sizes
}

// ready locks the workload to one thread, tells the test its tid and waits
// for the go-ahead on stdin.
func ready() {
	runtime.LockOSThread()
	fmt.Printf("%d\n", unix.Gettid())
	var b [1]byte
	_, _ = os.Stdin.Read(b[:])
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(1)
	}
}

func openFile(path string, flags int) int {
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0o600)
	check(err)
	return fd
}

func writeN(fd, size int, how int) {
	buf := make([]byte, size)
	half := size / 2
	var n int
	var err error
	switch how % 5 {
	case 0:
		n, err = unix.Write(fd, buf)
	case 1:
		var off int64
		off, err = unix.Seek(fd, 0, io.SeekCurrent)
		check(err)
		n, err = unix.Pwrite(fd, buf, off)
		_, _ = unix.Seek(fd, int64(n), io.SeekCurrent)
	case 2:
		n, err = unix.Writev(fd, [][]byte{buf[:half], buf[half:]})
	case 3:
		n, err = unix.Pwritev(fd, [][]byte{buf[:half], buf[half:]}, 0)
	case 4:
		n, err = unix.Pwritev2(fd, [][]byte{buf[:half], buf[half:]}, -1, 0)
	}
	check(err)
	if n != size {
		check(fmt.Errorf("wrote %d of %d bytes", n, size))
	}
}

func readN(fd, size int, how int) {
	buf := make([]byte, size)
	half := size / 2
	var n int
	var err error
	switch how % 5 {
	case 0:
		n, err = unix.Read(fd, buf)
	case 1:
		n, err = unix.Pread(fd, buf, 0)
	case 2:
		n, err = unix.Readv(fd, [][]byte{buf[:half], buf[half:]})
	case 3:
		n, err = unix.Preadv(fd, [][]byte{buf[:half], buf[half:]}, 0)
	case 4:
		n, err = unix.Preadv2(fd, [][]byte{buf[:half], buf[half:]}, -1, 0)
	}
	check(err)
	if n != size {
		check(fmt.Errorf("read %d of %d bytes", n, size))
	}
}

// filesChild: args are the paths of A, B, C, L, X, Y, Z.
func filesChild(args []string) int {
	a, b, c, l, x, y, z := args[0], args[1], args[2], args[3], args[4], args[5], args[6]
	ready()
	fd := openFile(a, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC)
	for i, n := range chunks(aBytes, aWrites) {
		writeN(fd, n, i)
	}
	fd = openFile(b, unix.O_RDONLY)
	for i, n := range chunks(bBytes, bReads) {
		readN(fd, n, i)
	}
	fd = openFile(c, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC)
	check(unix.Unlink(c))
	for range cWrites {
		writeN(fd, 100, 0)
	}
	fd = openFile(l, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC)
	for range lWrites {
		writeN(fd, 1000, 0)
	}
	fd = openFile(x, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC)
	for range xWrites {
		writeN(fd, 10, 0)
	}
	fd = openFile(y, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC)
	for range yWrites {
		writeN(fd, 50_000, 0)
	}
	fd = openFile(z, unix.O_RDONLY)
	for range zReads {
		readN(fd, 1000, 0)
	}
	return 0
}

// The calls filetop counts, in the order of writeN's and readN's how, with
// the hooks each drives: the entry program enter_fd_call (attached to
// sys_enter_read, the others through filetop.AlsoAttach) and one exit
// program per direction.
var (
	writeCalls = []string{"write", "pwrite64", "writev", "pwritev", "pwritev2"}
	readCalls  = []string{"read", "pread64", "readv", "preadv", "preadv2"}
)

func hookOf(call string) string {
	exit := "exit_write_call"
	if slices.Contains(readCalls, call) {
		exit = "exit_read_call"
	}
	return fmt.Sprintf("enter_fd_call at sys_enter_%s, %s at sys_exit_%s", call, exit, call)
}

// callSize is the i-th call's workload in TestEachCall: i+1 calls of
// 100*(i+1)+i bytes, so no two calls' rows look alike.
func callSize(i int) (calls, size int) { return i + 1, 100*(i+1) + i }

// callsChild: for each call filetop counts, callSize's calls of it on its
// own file, args[0]/NAME (the read calls' files exist already).
func callsChild(args []string) int {
	ready()
	for i, name := range writeCalls {
		fd := openFile(filepath.Join(args[0], name), unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC)
		n, size := callSize(i)
		for range n {
			writeN(fd, size, i)
		}
	}
	for i, name := range readCalls {
		fd := openFile(filepath.Join(args[0], name), unix.O_RDONLY)
		n, size := callSize(i)
		for range n {
			readN(fd, size, i)
		}
	}
	return 0
}

// specialChild writes 1000 bytes into a socketpair and reads them back,
// does the same with 10 bytes through a pipe, and writes 100 bytes to the
// regular file args[0].
func specialChild(args []string) int {
	ready()
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	check(err)
	writeN(sp[0], 1000, 0)
	readN(sp[1], 1000, 0)
	var p [2]int
	check(unix.Pipe2(p[:], unix.O_CLOEXEC))
	writeN(p[1], 10, 0)
	readN(p[0], 10, 0)
	fd := openFile(args[0], unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC)
	writeN(fd, 100, 0)
	return 0
}

// child is a started workload, blocked until go is called.
type child struct {
	t     *testing.T
	pid   uint32
	tid   uint32
	stdin io.WriteCloser
	wait  func() error
}

func startChild(t *testing.T, name string, args ...string) *child {
	t.Helper()
	cmd := testkit.Command(t, name, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("workload did not start: %v", err)
	}
	tid, err := strconv.ParseUint(strings.TrimSpace(line), 10, 32)
	if err != nil {
		t.Fatalf("workload said %q", line)
	}
	return &child{t: t, pid: uint32(cmd.Process.Pid), tid: uint32(tid), stdin: stdin, wait: cmd.Wait}
}

// filter selects the workload's thread: the Go runtime's own threads read
// files now and then (cgroup CPU limits, for one).
func (c *child) filter() loader.TaskFilter { return loader.TaskFilter{PID: c.pid, TID: c.tid} }

// run lets the workload go and waits until it has exited.
func (c *child) run() {
	c.t.Helper()
	if _, err := c.stdin.Write([]byte{1}); err != nil {
		c.t.Fatal(err)
	}
	if err := c.wait(); err != nil {
		c.t.Fatalf("workload: %v", err)
	}
}

func newTracer(t *testing.T, cfg filetop.Config) *filetop.Tracer {
	t.Helper()
	testkit.RequireRoot(t)
	tr, err := filetop.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	if len(tr.Dropped()) > 0 {
		t.Logf("hooks missing on this kernel: %v", tr.Dropped())
	}
	return tr
}

func drain(t *testing.T, tr *filetop.Tracer) filetop.Snapshot {
	t.Helper()
	s, err := tr.Drain()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// byPath indexes rows by path, failing on duplicates.
func byPath(t *testing.T, rows []filetop.Row) map[string]filetop.Row {
	t.Helper()
	m := map[string]filetop.Row{}
	for _, r := range rows {
		if _, dup := m[r.Path]; dup {
			t.Fatalf("two rows for %s: %+v", r.Path, rows)
		}
		m[r.Path] = r
	}
	return m
}

func paths(rows []filetop.Row) []string {
	var ps []string
	for _, r := range rows {
		ps = append(ps, filepath.Base(r.Path))
	}
	return ps
}

func TestFiles(t *testing.T) {
	testkit.RequireRoot(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, strings.Repeat("d", 100), strings.Repeat("e", 100), strings.Repeat("f", 100))
	if err := os.MkdirAll(long, 0o700); err != nil {
		t.Fatal(err)
	}
	f := func(name string) string { return filepath.Join(dir, name) }
	a, b, c, l, x, y, z := f("A"), f("B"), f("C"), filepath.Join(long, "L"), f("X"), f("Y"), f("Z")
	if len(l) <= 300 {
		t.Fatalf("long path is only %d bytes", len(l))
	}
	if err := os.WriteFile(b, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(z, make([]byte, 64<<10), 0o600); err != nil {
		t.Fatal(err)
	}

	ch := startChild(t, "files", a, b, c, l, x, y, z)
	filter := ch.filter()
	perThread := newTracer(t, filetop.Config{Filter: filter})
	perProcess := newTracer(t, filetop.Config{Filter: filter, PerProcess: true})
	tiny := newTracer(t, filetop.Config{Filter: filter, MapSize: 2})
	for _, tr := range []*filetop.Tracer{perThread, perProcess, tiny} {
		drain(t, tr)
	}
	ch.run()
	snap := drain(t, perThread)
	procSnap := drain(t, perProcess)
	tinySnap := drain(t, tiny)

	type want struct {
		reads, writes, rbytes, wbytes uint64
		deleted                       bool
	}
	wants := map[string]want{
		a: {writes: aWrites, wbytes: aBytes},
		b: {reads: bReads, rbytes: bBytes},
		c: {writes: cWrites, wbytes: cWrites * 100, deleted: true},
		l: {writes: lWrites, wbytes: lWrites * 1000},
		x: {writes: xWrites, wbytes: xWrites * 10},
		y: {writes: yWrites, wbytes: yWrites * 50_000},
		z: {reads: zReads, rbytes: zReads * 1000},
	}
	checkRows := func(t *testing.T, rows []filetop.Row, tid uint32) {
		got := byPath(t, rows)
		if len(got) != len(wants) {
			t.Errorf("got rows for %v, want exactly the 7 workload files", slices.Sorted(func(yield func(string) bool) {
				for p := range got {
					if !yield(p) {
						return
					}
				}
			}))
		}
		for path, w := range wants {
			r, ok := got[path]
			if !ok {
				t.Errorf("no row for %s", path)
				continue
			}
			g := want{r.Reads, r.Writes, r.ReadBytes, r.WriteBytes, r.Deleted}
			if g != w {
				t.Errorf("%s: got %+v, want %+v", filepath.Base(path), g, w)
			}
			if r.PID != ch.pid || r.TID != tid || r.Type != filetop.Regular || r.PathTruncated {
				t.Errorf("%s: got pid %d tid %d type %c truncated %v, want pid %d tid %d type R",
					filepath.Base(path), r.PID, r.TID, r.Type, r.PathTruncated, ch.pid, tid)
			}
		}
	}
	t.Run("per thread", func(t *testing.T) { checkRows(t, snap.Rows, ch.tid) })
	t.Run("per process", func(t *testing.T) { checkRows(t, procSnap.Rows, 0) })
	t.Run("sort and rows", func(t *testing.T) {
		for _, tc := range []struct {
			key  filetop.SortKey
			n    int
			want []string
		}{
			{filetop.ByAll, 0, []string{"A", "B", "Y", "Z", "L", "C", "X"}},
			{filetop.ByWrites, 3, []string{"A", "X", "C"}},
			{filetop.ByWBytes, 2, []string{"A", "Y"}},
			{filetop.ByReads, 2, []string{"B", "Z"}},
			{filetop.ByRBytes, 4, []string{"B", "Z", "A", "C"}},
		} {
			rows := filetop.Top(slices.Clone(snap.Rows), tc.key, tc.n)
			if got := paths(rows); !slices.Equal(got, tc.want) {
				t.Errorf("sort %s, %d rows: got %v, want %v", tc.key, tc.n, got, tc.want)
			}
		}
	})
	t.Run("map full", func(t *testing.T) {
		// The first two files fit; every call on the other five is lost.
		wantLost := uint64(cWrites + lWrites + xWrites + yWrites + zReads)
		if got := paths(tinySnap.Rows); len(got) != 2 || tinySnap.Lost != wantLost {
			t.Errorf("map of 2: got rows %v and %d lost, want A, B and %d lost", got, tinySnap.Lost, wantLost)
		}
		if snap.Lost != 0 {
			t.Errorf("default map lost %d", snap.Lost)
		}
	})
	t.Run("next interval empty", func(t *testing.T) {
		if s := drain(t, perThread); len(s.Rows) != 0 {
			t.Errorf("rows after the workload ended: %+v", s.Rows)
		}
	})
}

// TestEachCall drives every call filetop counts on a file of its own, so a
// hook that is not attached or counts wrong shows in that call's row.
func TestEachCall(t *testing.T) {
	testkit.RequireRoot(t)
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range readCalls {
		n, size := callSize(i)
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, n*size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ch := startChild(t, "calls", dir)
	tr := newTracer(t, filetop.Config{Filter: ch.filter()})
	if d := tr.Dropped(); len(d) != 0 {
		t.Fatalf("hooks dropped: %v; every kernel bpfkit supports (5.10+) has all ten calls", d)
	}
	drain(t, tr)
	ch.run()
	snap := drain(t, tr)
	got := byPath(t, snap.Rows)
	if len(got) != len(readCalls)+len(writeCalls) || snap.Lost != 0 {
		t.Errorf("got %d rows (%v), %d lost; want one row for each of the %d calls", len(got), paths(snap.Rows), snap.Lost,
			len(readCalls)+len(writeCalls))
	}
	for _, calls := range [][]string{writeCalls, readCalls} {
		for i, name := range calls {
			n, size := callSize(i)
			want := filetop.Row{Writes: uint64(n), WriteBytes: uint64(n * size)}
			if slices.Contains(readCalls, name) {
				want = filetop.Row{Reads: uint64(n), ReadBytes: uint64(n * size)}
			}
			r := got[filepath.Join(dir, name)]
			if r.Reads != want.Reads || r.ReadBytes != want.ReadBytes || r.Writes != want.Writes || r.WriteBytes != want.WriteBytes ||
				r.TID != ch.tid || r.Type != filetop.Regular {
				t.Errorf("%s (%s): got reads %d/%d bytes, writes %d/%d bytes, tid %d; want reads %d/%d, writes %d/%d, tid %d",
					name, hookOf(name), r.Reads, r.ReadBytes, r.Writes, r.WriteBytes, r.TID,
					want.Reads, want.ReadBytes, want.Writes, want.WriteBytes, ch.tid)
			}
		}
	}
}

func TestSocketsAndPipesOnlyWithAll(t *testing.T) {
	testkit.RequireRoot(t)
	file := filepath.Join(t.TempDir(), "R")
	ch := startChild(t, "special", file)
	filter := ch.filter()
	regular := newTracer(t, filetop.Config{Filter: filter})
	all := newTracer(t, filetop.Config{Filter: filter, All: true})
	drain(t, regular)
	drain(t, all)
	ch.run()

	if rows := drain(t, regular).Rows; len(rows) != 1 || rows[0].Type != filetop.Regular || rows[0].WriteBytes != 100 {
		t.Errorf("without All: got %+v, want one row: the regular file, 100 bytes written", rows)
	}
	rows := drain(t, all).Rows
	var types []string
	for _, r := range rows {
		prefix := map[filetop.Type]string{filetop.Socket: "socket:[", filetop.Pipe: "pipe:[", filetop.Regular: "/"}[r.Type]
		if !strings.HasPrefix(r.Path, prefix) {
			t.Errorf("%c row has path %q", r.Type, r.Path)
		}
		types = append(types, fmt.Sprintf("%c r%d/%d w%d/%d", r.Type, r.Reads, r.ReadBytes, r.Writes, r.WriteBytes))
	}
	slices.Sort(types)
	want := []string{"P r1/10 w1/10", "R r0/0 w1/100", "S r0/0 w1/1000", "S r1/1000 w0/0"}
	if !slices.Equal(types, want) {
		t.Errorf("with All: got %q, want %q", types, want)
	}
}
