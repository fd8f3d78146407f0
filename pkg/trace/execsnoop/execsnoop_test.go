package execsnoop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/loader/testkit"
	"github.com/bpfkit/bpfkit/pkg/trace/output"
)

func TestMain(m *testing.M) {
	// exit CODE: exit at once with CODE % 256 (any non-numeric prefix is
	// skipped, so "storm-1234" exits 1234 % 256).
	testkit.Register("exit", func(args []string) int {
		if len(args) == 0 {
			return 0
		}
		n, _ := strconv.Atoi(strings.TrimLeft(args[0], "abcdefghijklmnopqrstuvwxyz-"))
		return n % 256
	})
	// sleep-exit MS CODE: sleep, then exit with CODE.
	testkit.Register("sleep-exit", func(args []string) int {
		ms, _ := strconv.Atoi(args[0])
		code, _ := strconv.Atoi(args[1])
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return code
	})
	// block: wait until stdin closes (or the test kills us).
	testkit.Register("block", func([]string) int {
		var b [1]byte
		os.Stdin.Read(b[:])
		return 0
	})
	// crash: dump core (the runtime raises SIGABRT with its default action).
	testkit.Register("crash", func([]string) int {
		unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY})
		debug.SetTraceback("crash")
		panic("bpfkit test: crash on purpose")
	})
	// fexecve ARGS...: execveat(fd of the test binary, "", ARGS, AT_EMPTY_PATH)
	// as the "exit" child.
	testkit.Register("fexecve", func(args []string) int {
		self, _ := os.Executable()
		fd, err := unix.Open(self, unix.O_RDONLY, 0)
		if err != nil {
			return 100
		}
		argv, _ := syscall.SlicePtrFromStrings(append([]string{self}, args...))
		envv, _ := syscall.SlicePtrFromStrings(envWithChild("exit"))
		empty, _ := unix.BytePtrFromString("")
		_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
			uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envv[0])), unix.AT_EMPTY_PATH, 0)
		fmt.Fprintf(os.Stderr, "execveat: %v\n", errno)
		return 101
	})
	// missing ARGS...: execve a file that does not exist; exit 0 on ENOENT.
	testkit.Register("missing", func(args []string) int {
		err := syscall.Exec(missingFile, args, os.Environ())
		if errors.Is(err, syscall.ENOENT) {
			return 0
		}
		return 102
	})
	// threads N: start N threads that exit, then exit.
	testkit.Register("threads", func(args []string) int {
		n, _ := strconv.Atoi(args[0])
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
			}()
		}
		wg.Wait()
		time.Sleep(50 * time.Millisecond)
		return 0
	})
	testkit.Main(m)
}

const missingFile = "/nonexistent/bpfkit-test-missing"

func envWithChild(name string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BPFKIT_TEST_CHILD=") {
			env = append(env, kv)
		}
	}
	return append(env, "BPFKIT_TEST_CHILD="+name)
}

// execRec is an exec event copied out of the tracer's buffers.
type execRec struct {
	PID, PPID uint32
	Comm      string
	Filename  string
	Args      []string
	Ret       int32
	Cwd       string
	Truncated bool
	JSON      map[string]any
}

type exitRec struct {
	PID, TID, PPID uint32
	ExitCode       int
	Signal         syscall.Signal
	Core           bool
	Age            time.Duration
	Args           []string
}

func strs(b [][]byte) []string {
	if b == nil {
		return nil
	}
	s := make([]string, len(b))
	for i, a := range b {
		s[i] = string(a)
	}
	return s
}

// traceExecs runs an execsnoop tracer while work runs and returns every
// event, read to the end of the ring after work returned.
func traceExecs(t *testing.T, cfg Config, work func()) ([]execRec, loader.Stats) {
	t.Helper()
	testkit.RequireRoot(t)
	tr, err := New(cfg)
	if err != nil {
		t.Fatalf("start execsnoop: %v", err)
	}
	defer tr.Close()
	var recs []execRec
	var buf bytes.Buffer
	p := output.NewPrinter(&buf, output.JSON, Fields(FieldOptions{Cwd: cfg.Cwd}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var st loader.Stats
	var runErr error
	go func() {
		defer close(done)
		st, runErr = tr.Run(ctx, loader.StreamOptions{}, func(e *Event) error {
			buf.Reset()
			if err := p.Print(e); err != nil {
				return err
			}
			if err := p.Flush(); err != nil {
				return err
			}
			r := execRec{PID: e.PID, PPID: e.PPID, Comm: string(e.Comm), Filename: string(e.Filename),
				Args: strs(e.Args), Ret: e.Ret, Cwd: string(e.Cwd), Truncated: e.Truncated}
			if err := json.Unmarshal(buf.Bytes(), &r.JSON); err != nil {
				return fmt.Errorf("invalid JSON %q: %w", buf.String(), err)
			}
			recs = append(recs, r)
			return nil
		})
	}()
	work()
	cancel()
	<-done
	if runErr != nil {
		t.Fatalf("execsnoop: %v", runErr)
	}
	return recs, st
}

func traceExits(t *testing.T, cfg ExitConfig, work func()) ([]exitRec, loader.Stats) {
	t.Helper()
	testkit.RequireRoot(t)
	tr, err := NewExit(cfg)
	if err != nil {
		t.Fatalf("start exitsnoop: %v", err)
	}
	defer tr.Close()
	var recs []exitRec
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var st loader.Stats
	var runErr error
	go func() {
		defer close(done)
		st, runErr = tr.Run(ctx, loader.StreamOptions{}, func(e *ExitEvent) error {
			recs = append(recs, exitRec{PID: e.PID, TID: e.TID, PPID: e.PPID, ExitCode: e.ExitCode,
				Signal: e.Signal, Core: e.Core, Age: e.Age, Args: strs(e.Args)})
			return nil
		})
	}()
	work()
	cancel()
	<-done
	if runErr != nil {
		t.Fatalf("exitsnoop: %v", runErr)
	}
	return recs, st
}

func selfPath(t *testing.T) string {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self
}

func runChild(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := testkit.Command(t, name, args...)
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run child %s: %v", name, err)
		}
	}
	return cmd
}

// storm fork+execs total "exit" children from spawners goroutines, each
// with a unique argument, and returns each child's pid by argument.
func storm(t *testing.T, total, spawners int) map[string]int {
	var mu sync.Mutex
	pids := map[string]int{}
	var wg sync.WaitGroup
	for s := range spawners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := s; i < total; i += spawners {
				arg := fmt.Sprintf("storm-%d", i)
				cmd := runChild(t, "exit", arg)
				mu.Lock()
				pids[arg] = cmd.Process.Pid
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return pids
}

func TestStorm(t *testing.T) {
	const total = 5000
	for _, spawners := range []int{1, 4} {
		t.Run(fmt.Sprintf("spawners=%d", spawners), func(t *testing.T) {
			testkit.RequireRoot(t)
			self := selfPath(t)
			me := uint32(os.Getpid())
			var pids map[string]int
			var exits []exitRec
			var exitStats loader.Stats
			execs, execStats := traceExecs(t, Config{PPID: me}, func() {
				exits, exitStats = traceExits(t, ExitConfig{PPID: me}, func() {
					pids = storm(t, total, spawners)
				})
			})
			if execStats.Lost != 0 || exitStats.Lost != 0 {
				t.Errorf("lost %d exec and %d exit events, want 0", execStats.Lost, exitStats.Lost)
			}
			seen := map[string]bool{}
			for _, e := range execs {
				if len(e.Args) != 2 || e.Args[0] != self || !strings.HasPrefix(e.Args[1], "storm-") {
					t.Errorf("unexpected exec: %+v", e)
					continue
				}
				arg := e.Args[1]
				if seen[arg] {
					t.Errorf("exec of %s reported twice", arg)
				}
				seen[arg] = true
				if pid, ok := pids[arg]; !ok || uint32(pid) != e.PID || e.PPID != me || e.Ret != 0 || e.Filename != self || e.Truncated {
					t.Errorf("exec %s: got %+v, want pid %d ppid %d filename %s", arg, e, pid, me, self)
				}
			}
			if len(seen) != total {
				t.Errorf("execsnoop reported %d of %d execs", len(seen), total)
			}

			byPID := map[uint32]string{}
			for arg, pid := range pids {
				byPID[uint32(pid)] = arg
			}
			exited := 0
			reported := map[uint32]bool{}
			for _, x := range exits {
				if reported[x.PID] {
					t.Errorf("exit of %d reported twice: %+v", x.PID, x)
				}
				reported[x.PID] = true
				arg, ok := byPID[x.PID]
				if !ok {
					// Not a child of the storm: os/exec forks one
					// short-lived child of its own to probe pidfd support.
					if x.Args != nil {
						t.Errorf("unexpected exit: %+v", x)
					}
					continue
				}
				exited++
				n, _ := strconv.Atoi(strings.TrimPrefix(arg, "storm-"))
				if x.ExitCode != n%256 || x.Signal != 0 || x.Core || x.PPID != me {
					t.Errorf("exit of %s: got %+v, want code %d", arg, x, n%256)
				}
				if len(x.Args) != 2 || x.Args[1] != arg {
					t.Errorf("exit of %s: args %q", arg, x.Args)
				}
			}
			if exited != total {
				t.Errorf("exitsnoop reported %d of %d exits", exited, total)
			}
		})
	}
}

func findExec(recs []execRec, pid int, arg1 string) *execRec {
	for i := range recs {
		r := &recs[i]
		if r.PID == uint32(pid) && len(r.Args) > 1 && r.Args[1] == arg1 {
			return r
		}
	}
	return nil
}

func TestExecveat(t *testing.T) {
	self := selfPath(t)
	var cmd *exec.Cmd
	recs, _ := traceExecs(t, Config{PPID: uint32(os.Getpid())}, func() {
		cmd = runChild(t, "fexecve", "fexecve-42")
	})
	if code := cmd.ProcessState.ExitCode(); code != 42 {
		t.Fatalf("fexecve child exited %d, want 42 (the code of what it exec'd)", code)
	}
	pid := uint32(cmd.Process.Pid)
	// The child's own exec, then its execveat, in this order.
	want := []execRec{
		{PID: pid, Filename: self, Args: []string{self, "fexecve-42"}},
		{PID: pid, Filename: "/dev/fd/N", Args: []string{self, "fexecve-42"}},
	}
	if len(recs) != len(want) {
		t.Fatalf("got %d execs, want 2 (the child, then its execveat): %+v", len(recs), recs)
	}
	for i, r := range recs {
		fn := r.Filename
		if i == 1 && strings.HasPrefix(fn, "/dev/fd/") {
			fn = "/dev/fd/N"
		}
		if r.PID != want[i].PID || r.Ret != 0 || fn != want[i].Filename || !slices.Equal(r.Args, want[i].Args) {
			t.Errorf("exec %d: got %+v, want %+v", i, r, want[i])
		}
	}
}
