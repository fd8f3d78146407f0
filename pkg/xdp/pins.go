package xdp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/pkg/loader"
)

// The pin tree: /sys/fs/bpf/bpfkit/xdp/<netns inode>-<iface>/. /sys/fs/bpf
// is world-writable (mode 1777), so anyone may create bpfkit/ or
// bpfkit/xdp/ before root's first load and then own root's state. bpfkit
// creates each directory below /sys/fs/bpf owned by root with mode 0700,
// and trusts an existing one only if it is a real directory (not a
// symbolic link), owned by root, with no group or other permission bits:
// sshd's StrictModes, applied to every component.
var pinTree = []string{filepath.Dir(PinRoot), PinRoot}

// errNotRoot refuses pinned state to a process that is not root: the pin
// tree is root's alone, and a process with capabilities but another uid
// would create it as that uid.
var errNotRoot = errors.New("pinned XDP state (load, rule, stats, status, unload, redirect) is root's alone: run it with sudo, or attach in the foreground with `bpfkit xdp run IFACE --rules FILE`")

func requireRoot() error {
	if os.Geteuid() != 0 {
		return errNotRoot
	}
	return nil
}

// checkBPFFS checks /sys/fs/bpf itself: the BPF filesystem, owned by root,
// and sticky if others may write to it (so nobody can rename or remove
// root's entries in it).
func checkBPFFS() error {
	var fs unix.Statfs_t
	if err := unix.Statfs(loader.BPFFSPath, &fs); err != nil || int64(fs.Type) != unix.BPF_FS_MAGIC {
		return fmt.Errorf("%s is not the BPF filesystem: mount it (mount -t bpf bpf %s) and try again", loader.BPFFSPath, loader.BPFFSPath)
	}
	var st unix.Stat_t
	if err := unix.Lstat(loader.BPFFSPath, &st); err != nil {
		return fmt.Errorf("inspect %s: %w", loader.BPFFSPath, err)
	}
	if st.Uid != 0 {
		return fmt.Errorf("%s is owned by uid %d, not root: mount the BPF filesystem again as root (umount %s; mount -t bpf bpf %s)", loader.BPFFSPath, st.Uid, loader.BPFFSPath, loader.BPFFSPath)
	}
	if st.Mode&0o002 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return fmt.Errorf("%s is writable by everyone without the sticky bit, so anyone could replace bpfkit's state: chmod +t %s (or chmod 700)", loader.BPFFSPath, loader.BPFFSPath)
	}
	return nil
}

// checkOwned refuses a path in the pin tree that is not root's alone. It
// reports os.ErrNotExist (wrapped) when the path does not exist.
func checkOwned(path string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%s: %w", path, os.ErrNotExist)
		}
		return fmt.Errorf("inspect %s: %w", path, err)
	}
	fix := fmt.Sprintf("remove it (rm -r %s) and load again", path)
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return fmt.Errorf("%s is a symbolic link, not bpfkit's directory: %s", path, fix)
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("%s is not a directory: %s", path, fix)
	case st.Uid != 0:
		return fmt.Errorf("%s is owned by uid %d, not root: %s", path, st.Uid, fix)
	case st.Mode&0o077 != 0:
		return fmt.Errorf("%s has mode %04o, open to others: %s", path, st.Mode&0o7777, fix)
	}
	return nil
}

// trustPinTree checks /sys/fs/bpf and every existing directory of the pin
// tree down to dir (when not empty). exists says whether dir exists; a
// missing component is no error.
func trustPinTree(dir string) (exists bool, err error) {
	if err := requireRoot(); err != nil {
		return false, err
	}
	if err := checkBPFFS(); err != nil {
		return false, err
	}
	paths := pinTree
	if dir != "" {
		paths = append(paths[:len(paths):len(paths)], dir)
	}
	for _, p := range paths {
		if err := checkOwned(p); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return false, nil
			}
			return false, err
		}
	}
	return dir != "", nil
}

// makePinTree creates /sys/fs/bpf/bpfkit and .../xdp owned by root, mode
// 0700, where missing, and checks every component.
func makePinTree() error {
	if err := requireRoot(); err != nil {
		return err
	}
	if err := checkBPFFS(); err != nil {
		return err
	}
	for _, p := range pinTree {
		if err := unix.Mkdir(p, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create %s: %w", p, err)
		}
		if err := checkOwned(p); err != nil {
			return err
		}
	}
	return nil
}

// ValidIface checks an interface name by the rules of Linux's
// dev_valid_name: 1 to 15 bytes, not "." or "..", no '/', ':' or white
// space. Every command checks its interfaces here before a path or a
// netlink request is built from them.
func ValidIface(name string) error {
	bad := ""
	switch {
	case name == "":
		return errors.New("empty interface name: give one (`ip link` lists them)")
	case len(name) > unix.IFNAMSIZ-1:
		bad = fmt.Sprintf("is %d bytes long, at most %d fit", len(name), unix.IFNAMSIZ-1)
	case name == "." || name == "..":
		bad = "is not a name"
	case strings.ContainsAny(name, "/:"):
		bad = "contains '/' or ':'"
	case strings.IndexFunc(name, isSpace) >= 0 || strings.IndexByte(name, 0xa0) >= 0:
		bad = "contains white space"
	default:
		return nil
	}
	return fmt.Errorf("interface name %s %s: give an interface of `ip link`", Quote(name), bad)
}

// maxEcho is the most of a user's token that a message repeats.
const maxEcho = 40

// Quote quotes a token from the user for a message, cut to maxEcho bytes
// (marked with …), so a message never carries a whole file or a huge
// argument.
func Quote(s string) string {
	if len(s) <= maxEcho {
		return fmt.Sprintf("%q", s)
	}
	cut := maxEcho
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…", s[:cut])
}

// isSpace is the kernel's isspace() (lib/ctype.c) for ASCII; its one
// Latin-1 space, byte 0xa0, is checked as a byte.
func isSpace(r rune) bool { return r == ' ' || (r >= '\t' && r <= '\r') }

func utf8RuneStart(b byte) bool { return b&0xc0 != 0x80 }
