package testkit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Cgroup is a cgroup v2 directory a test made.
type Cgroup struct {
	Dir string // its path
	Rel string // its path below the cgroup2 mount, "/a/b": what serve labels it
	ID  uint64 // the kernel's cgroup id (the directory's inode number)
	FD  int    // the directory, open: SysProcAttr.CgroupFD starts a child in it
}

// NewCgroup makes the cgroup rel below root (the cgroup2 mount,
// loader.Cgroup2Root: testkit cannot import loader, whose tests use it).
// It is removed when the test ends, what runs in it killed first.
func NewCgroup(t testing.TB, root, rel string) *Cgroup {
	t.Helper()
	c := &Cgroup{Dir: filepath.Join(root, rel), Rel: "/" + strings.TrimPrefix(rel, "/")}
	if err := os.Mkdir(c.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(c.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(c.Dir)
		t.Fatal(err)
	}
	c.FD = fd
	t.Cleanup(func() {
		unix.Close(fd)
		RemoveCgroup(t, c.Dir)
	})
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	c.ID = st.Ino
	return c
}
