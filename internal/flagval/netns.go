package flagval

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/userfs"
)

// NetnsValue is a network namespace flag, stored as the namespace's inode
// (as bpfkit's netns columns and `stat -Lc %i /proc/PID/ns/net` show it):
// a namespace file (/proc/PID/ns/net, /run/netns/NAME), a name that
// `ip netns` lists, or that inode. Unset, *p stays 0: any namespace.
type NetnsValue struct{ p *uint32 }

// Netns is a network namespace flag stored in *p.
func Netns(p *uint32) *NetnsValue { return &NetnsValue{p} }

const netnsHint = "give /proc/PID/ns/net, a name from ip netns, or the inode of either (stat -Lc %i /proc/PID/ns/net)"

func (v *NetnsValue) String() string {
	if *v.p == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(*v.p), 10)
}
func (v *NetnsValue) Type() string { return "netns" }
func (v *NetnsValue) Set(s string) error {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n == 0 || n > math.MaxUint32 || !netnsInUse(n) {
			return fmt.Errorf("no process and no ip netns name has network namespace %d: %s", n, netnsHint)
		}
		*v.p = uint32(n)
		return nil
	}
	path := s
	if !strings.Contains(s, "/") {
		path = filepath.Join("/run/netns", s)
	}
	f, err := userfs.Open(path)
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("network namespace %s does not exist: %s", Quote(s), netnsHint)
	case err != nil:
		return fmt.Errorf("network namespace %s: %v", Quote(s), err)
	}
	defer f.Close()
	var st unix.Stat_t
	if typ, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE); err != nil || typ != unix.CLONE_NEWNET {
		return fmt.Errorf("%s is not a network namespace: %s", Quote(s), netnsHint)
	}
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("network namespace %s: %v", Quote(s), err)
	}
	*v.p = uint32(st.Ino)
	return nil
}

// netnsInUse reports whether a process (its main thread) or a name of
// ip netns is in the network namespace with inode ino. One only an open
// file keeps alive is not found: its /proc/PID/fd/N path names it.
func netnsInUse(ino uint64) bool {
	want := fmt.Sprintf("net:[%d]", ino)
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if p.Name()[0] < '0' || p.Name()[0] > '9' {
			continue
		}
		if l, err := os.Readlink(filepath.Join("/proc", p.Name(), "ns/net")); err == nil && l == want {
			return true
		}
	}
	names, _ := os.ReadDir("/run/netns")
	for _, n := range names {
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/run/netns", n.Name()), &st) == nil && st.Ino == ino {
			return true
		}
	}
	return false
}
