package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

const childEnv = "BPFKIT_TEST_CHILD"

var children = map[string]func(args []string) int{}

// Register names a function that a child process can run. Call it from
// init or TestMain before Main.
func Register(name string, fn func(args []string) int) { children[name] = fn }

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
