package testkit

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"testing"
)

const childEnv = "BPFKIT_TEST_CHILD"

var children = map[string]func(args []string) int{}

// Register names a function that a child process can run. Call it from
// init or TestMain before Main.
func Register(name string, fn func(args []string) int) { children[name] = fn }

// KeepMainThread, called from an init function, keeps the children named
// on the process's main thread: main runs on it for sure only when an init
// function locks it (locked later, in the child itself, the main goroutine
// may already have moved to another thread). A child whose other threads
// end needs it: the Go runtime parks a locked main thread for good instead
// of ending it, so the thread that must stay is the main one.
func KeepMainThread(names ...string) {
	if slices.Contains(names, os.Getenv(childEnv)) {
		runtime.LockOSThread()
	}
}

// Main runs the registered child function when the test binary was started
// as a child, and the tests otherwise. Use it as TestMain's body:
//
//	func TestMain(m *testing.M) { testkit.Main(m) }
func Main(m *testing.M) {
	if name := os.Getenv(childEnv); name != "" {
		fn, ok := children[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "testkit: no child %q registered\n", name)
			os.Exit(2)
		}
		os.Exit(fn(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// Command returns a command that re-executes the test binary as the child
// registered under name, with args. The caller starts and waits for it.
func Command(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("find test binary: %v", err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), childEnv+"="+name)
	cmd.Stderr = os.Stderr
	return cmd
}

// AsUser makes cmd (from Command) run as uid and gid with no capabilities.
// The test binary usually sits in a directory only root may enter, so the
// command runs a world-executable copy of it.
func AsUser(t testing.TB, cmd *exec.Cmd, uid, gid uint32) {
	t.Helper()
	dir, err := os.MkdirTemp("", "bpfkit-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	public := filepath.Join(dir, filepath.Base(cmd.Path))
	if err := copyFile(cmd.Path, public, 0o755); err != nil {
		t.Fatalf("copy test binary for uid %d: %v", uid, err)
	}
	cmd.Path = public
	cmd.Args[0] = public
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// NameThread locks the calling goroutine to its thread and sets the
// thread's name (comm), so that what the goroutine does next can be told
// apart by an in-kernel comm filter.
func NameThread(name string) error {
	runtime.LockOSThread()
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	return unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(p)), 0, 0, 0)
}

// ChildEnv is the environment entry that makes the test binary, started by
// a child itself (with fork and exec of its own), run the child name.
func ChildEnv(name string) string { return childEnv + "=" + name }
