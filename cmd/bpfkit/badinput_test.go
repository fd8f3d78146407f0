package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

// badInput is one refused invocation: the review's cases that were not
// refused (../shared/reviews/hostile-review.md, row numbers in the names)
// and more of the same kind. In args, {cwd} is the directory the command
// runs in, {file} an existing regular file elsewhere and {keep} an
// existing trace file in {cwd} that must stay as it was.
type badInput struct {
	name string
	args []string
	want string // in the one line on stderr
}

var badInputs = []badInput{
	// ids: 1 to pid_max-1; user ids 0 to 2^32-2 (row 3, 13, 14)
	{"pid 0", []string{"opensnoop", "-p", "0"}, "process id 0 is the idle task"},
	{"pid above pid_max (3)", []string{"opensnoop", "-p", "999999999"}, "above this kernel's pid_max"},
	{"pid 2^32", []string{"opensnoop", "-p", "4294967296"}, "above this kernel's pid_max"},
	{"pid negative", []string{"opensnoop", "-p", "-1"}, "give a process id"},
	{"pid word", []string{"opensnoop", "-p", "abc"}, "give a process id"},
	{"tid above pid_max", []string{"opensnoop", "-t", "99999999"}, "thread id 99999999 is above"},
	{"tid 0", []string{"filetop", "-t", "0"}, "thread id 0 is the idle task"},
	{"uid negative (13)", []string{"opensnoop", "-u", "-5"}, "give a user id from 0 to 4294967294"},
	{"uid 2^32 wraps to root (14)", []string{"opensnoop", "-u", "4294967296"}, "give a user id from 0 to 4294967294"},
	{"uid -1 as a number", []string{"opensnoop", "-u", "4294967295"}, "give a user id from 0 to 4294967294"},
	{"filetop uid 2^32 (14)", []string{"filetop", "-u", "4294967296"}, "give a user id"},
	{"execsnoop uid 2^32", []string{"execsnoop", "-u", "4294967296"}, "give a user id"},
	{"execsnoop ppid 0", []string{"execsnoop", "-p", "0"}, "process id 0"},
	{"exitsnoop ppid above pid_max", []string{"exitsnoop", "--ppid", "99999999"}, "above this kernel's pid_max"},
	{"cswitch pid 0", []string{"cswitch", "-p", "0"}, "process id 0"},
	{"runqlat pid above pid_max", []string{"runqlat", "-p", "99999999"}, "above this kernel's pid_max"},
	{"offcputime tid above pid_max", []string{"offcputime", "-t", "99999999"}, "above this kernel's pid_max"},
	// durations: never negative (row 27)
	{"opensnoop -d negative", []string{"opensnoop", "-d", "-1s"}, "must not be negative"},
	{"opensnoop -d word", []string{"opensnoop", "-d", "abc"}, "give a duration"},
	{"offcputime -d negative never stops (27)", []string{"offcputime", "-d", "-1s"}, "must not be negative"},
	{"exitsnoop -d negative", []string{"exitsnoop", "-d", "-5s"}, "must not be negative"},
	{"execsnoop -d negative", []string{"execsnoop", "-d", "-1ms"}, "must not be negative"},
	{"sched record -d negative", []string{"sched", "record", "-w", "{cwd}/t.json", "-d", "-1s"}, "must not be negative"},
	{"opensnoop --count negative", []string{"opensnoop", "--count", "-1"}, "--count"},
	// sizes: the range the message gives (rows 12, 17, 24)
	{"ring size 0 (12)", []string{"opensnoop", "--ring-size", "0"}, "must be a power of two from 4096"},
	{"ring size not a power of two", []string{"opensnoop", "--ring-size", "5000"}, "must be a power of two"},
	{"ring size negative", []string{"execsnoop", "--ring-size", "-4096"}, "must be a power of two"},
	{"ring size 64 GiB", []string{"exitsnoop", "--ring-size", "68719476736"}, "must be a power of two"},
	{"oomkill ring size not a power of two", []string{"oomkill", "--ring-size", "5000"}, "must be a power of two"},
	{"ring size word", []string{"sched", "record", "-w", "{cwd}/t.json", "--ring-size", "big"}, "give a whole number"},
	{"max-args 0 (17)", []string{"execsnoop", "--max-args", "0"}, "give a number of bytes from 1 to 131072"},
	{"max-args too big", []string{"execsnoop", "--max-args", "999999"}, "give a number of bytes from 1 to 131072"},
	{"exitsnoop max-args negative", []string{"exitsnoop", "--max-args", "-7"}, "from 1 to 131072"},
	{"map size 0 (24)", []string{"filetop", "--map-size", "0"}, "give a number of entries from 1 to 16777216"},
	{"map size too big", []string{"filetop", "--map-size", "2000000000"}, "give a number of entries from 1 to 16777216"},
	{"rows negative (22)", []string{"filetop", "-r", "-3"}, "give a number of rows from 0"},
	{"cswitch rows negative (22)", []string{"cswitch", "-r", "-1"}, "give a number of rows from 0"},
	// formats and arguments
	{"format xml", []string{"opensnoop", "-o", "xml"}, `output format "xml": use table or json`},
	{"format for sched record", []string{"sched", "record", "-w", "{cwd}/t.json", "-o", "yaml"}, "use table or json"},
	{"check format", []string{"check", "-o", "csv"}, "use table or json"},
	{"xdp format", []string{"xdp", "status", "-o", "xml"}, "use table or json"},
	{"unknown flag", []string{"opensnoop", "--bogus"}, "unknown flag: --bogus"},
	{"extra argument", []string{"opensnoop", "foo"}, `unknown command "foo"`},
	{"check argument", []string{"check", "foo"}, `unknown command "foo"`},
	{"name too long", []string{"opensnoop", "-n", "abcdefghijklmnopq"}, "longer than the kernel's 15 bytes"},
	{"filetop sort key", []string{"filetop", "-s", "bogus"}, `sort key "bogus"`},
	{"interval 0", []string{"filetop", "0"}, "must be positive"},
	{"interval negative", []string{"cswitch", "--", "-1"}, "must be positive"},
	{"interval word", []string{"runqlat", "abc"}, "give seconds"},
	{"count 0", []string{"filetop", "1", "0"}, "positive number of intervals"},
	{"drops interval without --summary", []string{"drops", "5"}, "go with --summary"},
	{"drops --summary interval 0", []string{"drops", "--summary", "0"}, "must be positive"},
	{"drops netns word", []string{"drops", "--netns", "no-such-ns"}, `network namespace "no-such-ns" does not exist`},
	{"drops netns inode unused", []string{"drops", "--netns", "5"}, "no process and no ip netns name has network namespace 5"},
	{"drops netns 0", []string{"drops", "--summary", "--netns", "0"}, "network namespace 0: give /proc/PID/ns/net"},
	{"drops netns not a namespace", []string{"drops", "--netns", "{file}"}, "is not a network namespace"},
	{"drops netns of mounts", []string{"drops", "--netns", "/proc/self/ns/mnt"}, "is not a network namespace"},
	{"softirqs interval word", []string{"softirqs", "abc"}, "give seconds"},
	{"netrx count 0", []string{"netrx", "1", "0"}, "positive number of intervals"},
	{"three positionals", []string{"filetop", "1", "2", "3"}, "accepts at most 2 arg(s)"},
	{"runqlat two keys", []string{"runqlat", "-P", "-L"}, "choose one of -P, -L and --pidnss"},
	{"offcputime both stack kinds", []string{"offcputime", "-k", "-u"}, "at most one of kernel-only"},
	{"offcputime state", []string{"offcputime", "--state", "Z"}, "use S (sleeping)"},
	{"offcputime max below min", []string{"offcputime", "-m", "1000", "-M", "10"}, "below the minimum"},
	{"offcputime duration argument", []string{"offcputime", "--", "-1"}, "give seconds"},
	{"syscount errno", []string{"syscount", "-e", "ENOPE"}, "give a name such as ENOENT"},
	{"syscount map size 0", []string{"syscount", "--map-size", "0"}, "give a number of entries from 1"},
	{"syscount pid 0", []string{"syscount", "-p", "0"}, "process id 0"},
	{"zombies over negative", []string{"zombies", "--over", "-1s"}, "must not be negative"},
	{"zombies ppid 0", []string{"zombies", "--ppid", "0"}, "process id 0"},
	{"tcplife port 0", []string{"tcplife", "-L", "0"}, "give ports from 1 to 65535"},
	{"tcpstates port name", []string{"tcpstates", "-D", "http"}, "give ports from 1 to 65535"},
	{"tcpretrans nine ports", []string{"tcpretrans", "-L", "1,2,3,4,5,6,7,8,9"}, "give at most 8"},
	{"tcplife pid 0", []string{"tcplife", "-p", "0"}, "process id 0"},
	{"tcpretrans cgroup missing", []string{"tcpretrans", "--cgroup", "/nonexistent/cg"}, "does not exist"},
	{"malloc nothing to trace", []string{"malloc"}, "give a process (-p PID) or a command"},
	{"malloc pid and command", []string{"malloc", "-p", "1", "--", "/bin/true"}, "one of them"},
	{"malloc argument without --", []string{"malloc", "-p", "1", "ls"}, "give the command after --"},
	{"malloc no such command", []string{"malloc", "--", "/nonexistent/cmd"}, "no such file"},
	{"malloc kernel thread", []string{"malloc", "-p", "2"}, "kernel thread"},
	{"malloc older-than alone", []string{"malloc", "-p", "1", "--older-than", "5s"}, "add --outstanding"},
	{"malloc folded alone", []string{"malloc", "-p", "1", "--folded"}, "add --stacks"},
	// cgroups: named, opened as the user (rows 8-10)
	{"cgroup missing (8)", []string{"opensnoop", "--cgroup", "/nonexistent/cg"}, "does not exist"},
	{"cgroup is a file (10)", []string{"opensnoop", "--cgroup", "{file}"}, "is not a directory"},
	{"cgroup not v2 (9)", []string{"runqlat", "--cgroup", "/proc"}, "is not in a cgroup v2 hierarchy"},
	{"execsnoop cgroup is a file", []string{"execsnoop", "--cgroup", "{file}"}, "is not a directory"},
	// sched record's file: -w, checked before it is touched (rows 28-31)
	{"no trace file (28)", []string{"sched", "record"}, "give the trace file to write with -w"},
	{"trace file in a missing dir (29)", []string{"sched", "record", "-w", "/nonexistent/dir/t.json"}, "no such file or directory"},
	{"trace file is a dir (29)", []string{"sched", "record", "-w", "{cwd}"}, "is a directory"},
	{"bad ring size keeps the file (30)", []string{"sched", "record", "-w", "{keep}", "--ring-size", "5000"}, "must be a power of two"},
	{"bad duration keeps the file (30)", []string{"sched", "record", "-w", "{keep}", "-d", "-1s"}, "must not be negative"},
	{"max-events negative keeps the file", []string{"sched", "record", "-w", "{keep}", "--max-events", "-1"}, "--max-events"},
	{"old -o file is a format now (31)", []string{"sched", "record", "-o", "-"}, `output format "-"`},
	// xdp: interface names (rows 64, 65) and values, in a test namespace
	{"iface path (65)", []string{"xdp", "rule", "list", "../../4026532245-va"}, "interface name"},
	{"iface short path", []string{"xdp", "stats", "../x"}, "interface name"},
	{"iface slash", []string{"xdp", "load", "va/x"}, "interface name"},
	{"iface too long (64)", []string{"xdp", "load", "abcdefghijklmnopqrstuvwxyz"}, "interface name"},
	{"iface dotdot", []string{"xdp", "unload", ".."}, "interface name"},
	{"iface empty", []string{"xdp", "unload", ""}, "empty interface name"},
	{"iface space", []string{"xdp", "rule", "add", "v b", "--action", "drop"}, "interface name"},
	{"redirect to a bad name", []string{"xdp", "redirect", "--from", "vb", "--to", "a:b"}, "interface name"},
	{"stats interval 0", []string{"xdp", "stats", "vb", "--watch", "--interval", "0s"}, "must be more than 0"},
	{"src empty (42)", []string{"xdp", "rule", "add", "vb", "--src", "", "--action", "drop"}, "--src"},
	{"iface missing", []string{"xdp", "load", "nosuch0"}, `interface "nosuch0" not found`},
	{"mode", []string{"xdp", "load", "vb", "--mode", "turbo"}, "turbo"},
	{"policy", []string{"xdp", "load", "vb", "--policy", "maybe"}, "maybe"},
	{"rules file missing", []string{"xdp", "load", "vb", "--rules", "/nonexistent/r"}, "no such file or directory"},
	{"rules file is a dir", []string{"xdp", "load", "vb", "--rules", "{cwd}"}, "is a directory"},
	{"unload nothing", []string{"xdp", "unload"}, "give one interface, or --all"},
	{"serve listen no port", []string{"serve", "--listen", "127.0.0.1"}, "give HOST:PORT"},
	{"serve listen bad host", []string{"serve", "--listen", "1.2.3:80"}, "give an IPv4 or IPv6 address"},
	{"serve listen bad port", []string{"serve", "--listen", "[::1]:70000"}, "from 1 to 65535"},
	{"serve unknown tool", []string{"serve", "--tools", "exec,nope"}, `no tool "nope"`},
	{"serve max-series 0", []string{"serve", "--max-series", "0"}, "from 1 to 1000000"},
	{"serve config missing", []string{"serve", "--config", "/nonexistent/serve.toml"}, "no such file or directory"},
	{"serve config not toml", []string{"serve", "--config", "{file}"}, "expected '.' or '='"},
	{"serve argument", []string{"serve", "x"}, "unknown command"},
	{"serve malloc-pids 0", []string{"serve", "--malloc-pids", "1,0"}, "give a process id from 1"},
	{"serve malloc-pids not a number", []string{"serve", "--malloc-pids", "1;2"}, "give a process id, a number from 1"},
}

// TestBadInput: each bad invocation exits 1 with one short line on stderr
// that names the problem, prints nothing on stdout, creates nothing in its
// working directory, leaves an existing output file as it was, and leaves
// no XDP program attached and nothing pinned.
func TestBadInput(t *testing.T) {
	testkit.RequireRoot(t)
	if len(badInputs) < 60 {
		t.Fatalf("only %d cases", len(badInputs))
	}
	ns := xdpNS(t)
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const kept = `{"traceEvents":[]}`
	for _, c := range badInputs {
		t.Run(c.name, func(t *testing.T) {
			cwd := t.TempDir()
			keep := filepath.Join(cwd, "keep.json")
			if err := os.WriteFile(keep, []byte(kept), 0o644); err != nil {
				t.Fatal(err)
			}
			args := make([]string, len(c.args))
			for i, a := range c.args {
				args[i] = strings.NewReplacer("{cwd}", cwd, "{file}", file, "{keep}", keep).Replace(a)
			}
			cmd := bpfkit(t, args...)
			cmd.Dir = cwd
			stdout, stderr, code := runCmd(t, cmd, ns.Start)
			oneLineError(t, stderr, code, c.want)
			if len(stderr) > 400 {
				t.Errorf("stderr is %d bytes long", len(stderr))
			}
			if stdout != "" {
				t.Errorf("stdout: %q", stdout)
			}
			entries, err := os.ReadDir(cwd)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Name() != "keep.json" {
					t.Errorf("created %s in the working directory", e.Name())
				}
			}
			if b, err := os.ReadFile(keep); err != nil || string(b) != kept {
				t.Errorf("keep.json changed: %q, %v", b, err)
			}
			if id := xdpProgOn(t, ns, "vb"); id != 0 {
				t.Errorf("XDP program %d left on vb", id)
			}
			if _, err := os.Stat(pinDir(t, ns, "vb")); err == nil {
				t.Errorf("state pinned for vb")
			}
		})
	}
}
