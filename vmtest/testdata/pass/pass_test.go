// Package pass is a vmtest fixture: it checks the guest environment.
package pass

import (
	"os"
	"strings"
	"syscall"
	"testing"
)

func release(t *testing.T) string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var b []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

func TestGuest(t *testing.T) {
	rel := release(t)
	t.Logf("uname -r: %s", rel)
	if want := os.Getenv("BPFKIT_FIXTURE_KERNEL"); want != "" && !strings.HasPrefix(rel, want) {
		t.Errorf("kernel %s, want prefix %s", rel, want)
	}
	if os.Getuid() != 0 {
		t.Errorf("uid %d, want 0", os.Getuid())
	}
	if os.Getenv("BPFKIT_FIXTURE") != "42" {
		t.Errorf("BPFKIT_FIXTURE=%q, want 42", os.Getenv("BPFKIT_FIXTURE"))
	}
}

func TestMounts(t *testing.T) {
	for path, magic := range map[string]int64{
		"/sys/fs/bpf":         0xcafe4a11,
		"/sys/kernel/tracing": 0x74726163,
		"/sys/fs/cgroup":      0x63677270,
		"/proc":               0x9fa0,
	} {
		var st syscall.Statfs_t
		if err := syscall.Statfs(path, &st); err != nil {
			t.Errorf("statfs %s: %v", path, err)
			continue
		}
		if st.Type != magic {
			t.Errorf("%s: fs magic %#x, want %#x", path, st.Type, magic)
		}
	}
}

func TestTestdata(t *testing.T) {
	b, err := os.ReadFile("testdata/hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(b)) != "hello from testdata" {
		t.Errorf("got %q", b)
	}
}

func TestKernelConfig(t *testing.T) {
	if _, err := os.Stat("/boot/config-" + release(t)); err != nil {
		t.Error(err)
	}
}

func TestModulesAndLoopback(t *testing.T) {
	if _, err := os.Stat("/sys/module/veth"); err != nil {
		t.Errorf("veth not loaded: %v", err)
	}
	b, err := os.ReadFile("/sys/class/net/lo/operstate")
	if err != nil {
		t.Fatal(err)
	}
	// lo reports "unknown" when up.
	if s := strings.TrimSpace(string(b)); s == "down" {
		t.Errorf("lo is %s", s)
	}
}
