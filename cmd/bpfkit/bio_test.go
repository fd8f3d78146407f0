package main

import (
	"testing"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

// TestBioBadInput: the block I/O tools refuse bad flags and arguments with
// one line on stderr naming the fix, exit 1, print nothing and load nothing.
func TestBioBadInput(t *testing.T) {
	testkit.RequireRoot(t)
	for _, c := range []badInput{
		{"biolatency pid 0", []string{"biolatency", "-p", "0"}, "process id 0 is the idle task"},
		{"biolatency pid above pid_max", []string{"biolatency", "-p", "99999999"}, "above this kernel's pid_max"},
		{"biolatency unknown disk", []string{"biolatency", "-d", "nosuchdisk9"}, `disk "nosuchdisk9" is not in /proc/partitions`},
		{"biolatency cgroup missing", []string{"biolatency", "-c", "/nonexistent/cg"}, "does not exist"},
		{"biolatency cgroup not v2", []string{"biolatency", "--cgroup", "/proc"}, "is not in a cgroup v2 hierarchy"},
		{"biolatency interval 0", []string{"biolatency", "0"}, "must be positive"},
		{"biolatency count word", []string{"biolatency", "1", "x"}, "positive number of intervals"},
		{"biolatency three positionals", []string{"biolatency", "1", "2", "3"}, "accepts at most 2 arg(s)"},
		{"biosnoop min-us negative", []string{"biosnoop", "--min-us", "-1"}, "give a number of microseconds from 0"},
		{"biosnoop min-us word", []string{"biosnoop", "--min-us", "fast"}, "give a number of microseconds"},
		{"biosnoop duration negative", []string{"biosnoop", "--duration", "-1s"}, "must not be negative"},
		{"biosnoop disk", []string{"biosnoop", "-d", "sdzz9"}, `disk "sdzz9"`},
		{"biosnoop ring size", []string{"biosnoop", "--ring-size", "5000"}, "must be a power of two"},
		{"biosnoop argument", []string{"biosnoop", "foo"}, `unknown command "foo"`},
		{"biosnoop format", []string{"biosnoop", "-o", "xml"}, "use table or json"},
		{"biotop sort key", []string{"biotop", "-s", "bogus"}, `sort key "bogus"`},
		{"biotop rows negative", []string{"biotop", "-r", "-3"}, "give a number of rows from 0"},
		{"biotop interval word", []string{"biotop", "soon"}, "give seconds"},
		{"biotop pid word", []string{"biotop", "-p", "abc"}, "give a process id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := runBpfkit(t, bpfkit(t, c.args...))
			oneLineError(t, stderr, code, c.want)
			if stdout != "" {
				t.Errorf("stdout: %q", stdout)
			}
		})
	}
}
