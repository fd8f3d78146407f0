package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
)

// nobody is the unprivileged user these tests run bpfkit as.
const nobody = 65534

// privateDir returns a directory only root may enter, holding a file with
// a secret line and an empty subdirectory.
func privateDir(t *testing.T) (dir, secret, sub string) {
	t.Helper()
	dir = t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	secret = filepath.Join(dir, "secret.rules")
	if err := os.WriteFile(secret, []byte("TOPSECRET-4b1d:x:0:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sub = filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, secret, sub
}

// TestFileCapsRefused: a copy of bpfkit with file capabilities (what the
// old error message advised) refuses to run for an unprivileged user, so
// no path the user names is ever opened with rights the user lacks.
func TestFileCapsRefused(t *testing.T) {
	testkit.RequireRoot(t)
	dir, secret, sub := privateDir(t)
	target := filepath.Join(dir, "x.json")
	for _, args := range [][]string{
		{"sched", "record", "-w", target, "-d", "100ms"},
		{"xdp", "load", "nosuch0", "--rules", secret},
		{"opensnoop", "--cgroup", sub, "-d", "100ms"},
		{"check"},
	} {
		t.Run(args[0], func(t *testing.T) {
			cmd := bpfkit(t, args...)
			testkit.AsUser(t, cmd, nobody, nobody)
			testkit.SetFileCaps(t, cmd.Path, unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_DAC_OVERRIDE)
			stdout, stderr, code := runBpfkit(t, cmd)
			oneLineError(t, stderr, code, "file capabilities or setuid", "setcap -r")
			if stdout != "" || strings.Contains(stderr, "TOPSECRET") {
				t.Errorf("stdout %q, stderr %q", stdout, stderr)
			}
			if _, err := os.Stat(target); err == nil {
				t.Errorf("%s was created", target)
			}
		})
	}
}

// TestUserRights: with capabilities given as ambient ones (as a service
// unit gives them), CAP_DAC_OVERRIDE included, bpfkit still opens the
// paths its user names with the user's own rights: it cannot create a
// file, read a rule file or use a cgroup directory the user could not,
// and it never echoes what a file holds; what the user may write is
// written, owned by the user.
func TestUserRights(t *testing.T) {
	testkit.RequireRoot(t)
	dir, secret, sub := privateDir(t)
	target := filepath.Join(dir, "x.json")
	asNobody := func(args ...string) *exec.Cmd {
		cmd := bpfkit(t, args...)
		testkit.AsUser(t, cmd, nobody, nobody)
		testkit.WithAmbientCaps(cmd, unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_SYS_ADMIN,
			unix.CAP_NET_ADMIN, unix.CAP_DAC_OVERRIDE, unix.CAP_DAC_READ_SEARCH)
		if !testkit.KernelAtLeast(5, 11) {
			// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK,
			// which CAP_SYS_RESOURCE lifts. Only there: a host whose
			// bounding set lacks it (this project's does) cannot grant it.
			testkit.WithAmbientCaps(cmd, unix.CAP_SYS_RESOURCE)
		}
		return cmd
	}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"output file", []string{"sched", "record", "-w", target, "-d", "100ms"}},
		{"rule file", []string{"xdp", "load", "nosuch0", "--rules", secret}},
		{"cgroup", []string{"opensnoop", "--cgroup", sub, "-d", "100ms"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := runBpfkit(t, asNobody(c.args...))
			oneLineError(t, stderr, code, "permission denied")
			if stdout != "" || strings.Contains(stderr, "TOPSECRET") {
				t.Errorf("stdout %q, stderr %q", stdout, stderr)
			}
			if _, err := os.Stat(target); err == nil {
				t.Errorf("%s was created", target)
			}
		})
	}
	t.Run("own file", func(t *testing.T) {
		mine, err := os.MkdirTemp("", "bpfkit-nobody-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(mine) })
		if err := os.Chmod(mine, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(mine, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(mine, "trace.json")
		_, stderr, code := runBpfkit(t, asNobody("sched", "record", "-w", out, "-d", "200ms"))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var st unix.Stat_t
		if err := unix.Stat(out, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != nobody || st.Gid != nobody {
			t.Errorf("trace file owned by %d:%d, want %d:%d", st.Uid, st.Gid, nobody, nobody)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(b) {
			t.Errorf("trace file is not valid JSON (%d bytes)", len(b))
		}
		left, _ := filepath.Glob(filepath.Join(mine, ".*"))
		if len(left) != 0 {
			t.Errorf("temporary files left: %v", left)
		}
	})
}

// TestPerfEventsRestricted: a tool on plain tracepoints (execsnoop), run
// with the capabilities the shipped units give, where the kernel lets only
// CAP_SYS_ADMIN open perf events (perf_event_paranoid above 2: Debian's,
// the VMs') fails with one line naming the ways out; where it does not
// (this host) it runs.
func TestPerfEventsRestricted(t *testing.T) {
	testkit.RequireRoot(t)
	if err := loader.EnsureTracefs(); err != nil {
		t.Fatal(err)
	}
	restricted, err := loader.PerfEventsRestricted()
	if err != nil {
		t.Fatal(err)
	}
	cmd := bpfkit(t, "execsnoop", "-d", "100ms")
	testkit.AsUser(t, cmd, nobody, nobody)
	testkit.WithAmbientCaps(cmd, unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_DAC_READ_SEARCH)
	if !testkit.KernelAtLeast(5, 11) {
		testkit.WithAmbientCaps(cmd, unix.CAP_SYS_RESOURCE) // maps charged to RLIMIT_MEMLOCK
	}
	_, stderr, code := runBpfkit(t, cmd)
	t.Logf("perf events restricted %v: exit %d: %s", restricted, code, stderr)
	if restricted {
		oneLineError(t, stderr, code, "only CAP_SYS_ADMIN", "kernel.perf_event_paranoid=2", "sudo")
	} else if code != 0 {
		t.Errorf("exit %d: %s", code, stderr)
	}
}
