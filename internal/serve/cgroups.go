package serve

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/pkg/loader"
)

// cgroup is what the labels of one cgroup id say.
type cgroup struct {
	path string // relative to the cgroup2 mount, from "/"
	ctr  Container
	used bool // named by a counter: kept after the cgroup is gone
}

// unknownCgroup labels an id that was gone before serve ever saw its
// directory (a short-lived cgroup created and removed between scrapes).
const unknownCgroup = "unknown"

// cgroups maps the cgroup ids the kernel counts by (the inode numbers of
// the directories of the cgroup2 hierarchy) to their paths. The tree is
// walked again when an id is not known, at most once per scrape; a cgroup
// that is gone keeps its last known path. Not safe for concurrent use.
type cgroups struct {
	root   string
	byID   map[uint64]*cgroup // ids no walk found are kept as unknown
	walked bool               // in this scrape
	walks  int
}

func newCgroups() (*cgroups, error) {
	root, err := loader.Cgroup2Root()
	if err != nil {
		return nil, err
	}
	c := &cgroups{root: root, byID: map[uint64]*cgroup{}}
	return c, c.walk()
}

// scrape starts a scrape: the tree may be walked once more.
func (c *cgroups) scrape() { c.walked = false }

// lookup returns the cgroup of id.
func (c *cgroups) lookup(id uint64) *cgroup {
	if cg, ok := c.byID[id]; ok {
		cg.used = true
		return cg
	}
	if !c.walked && c.walk() == nil {
		if cg, ok := c.byID[id]; ok {
			cg.used = true
			return cg
		}
	}
	cg := &cgroup{path: unknownCgroup, used: true}
	c.byID[id] = cg
	return cg
}

// walk reads the whole tree again. Entries of cgroups that are gone stay
// if a counter named them, so their series keep their labels (and an id no
// walk found stays unknown instead of being walked for at every scrape).
func (c *cgroups) walk() error {
	c.walked = true
	c.walks++
	var st unix.Stat_t
	if err := unix.Stat(c.root, &st); err != nil {
		return fmt.Errorf("cgroup2 mount %s: %w", c.root, err)
	}
	fresh := map[uint64]*cgroup{}
	add := func(id uint64, path string) {
		// A label value must be UTF-8; a directory name may be any bytes.
		path = strings.ToValidUTF8(path, "\uFFFD")
		if old, ok := c.byID[id]; ok && old.path == path {
			fresh[id] = old
			return
		}
		fresh[id] = &cgroup{path: path, ctr: ParseContainer(path)}
	}
	add(st.Ino, "/")
	if err := walkDirs(c.root, "", add); err != nil {
		return err
	}
	for id, cg := range c.byID {
		if _, ok := fresh[id]; !ok && cg.used {
			fresh[id] = cg
		}
	}
	c.byID = fresh
	return nil
}

// walkDirs calls fn with the inode number and relative path of every
// directory below dir. It reads the directory entries' own inode numbers
// (getdents), so the files of each cgroup are neither opened nor stat'ed;
// kernfs gives each directory its node id, the cgroup id, as inode number.
func walkDirs(dir, rel string, fn func(ino uint64, path string)) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if rel != "" && (err == unix.ENOENT || err == unix.ENOTDIR) {
			return nil // removed while we walked
		}
		return fmt.Errorf("read cgroup directory %s: %w", dir, err)
	}
	var subdirs []string
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			unix.Close(fd)
			if rel != "" && err == unix.ENOENT {
				return nil // removed between the open and the read
			}
			return fmt.Errorf("read cgroup directory %s: %w", dir, err)
		}
		if n <= 0 {
			break
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:]))
			if reclen < 19 || reclen > len(b) {
				break
			}
			if b[18] == unix.DT_DIR {
				name := unix.ByteSliceToString(b[19:reclen])
				if name != "." && name != ".." {
					p := rel + "/" + name
					fn(binary.NativeEndian.Uint64(b), p)
					subdirs = append(subdirs, name)
				}
			}
			b = b[reclen:]
		}
	}
	unix.Close(fd)
	for _, name := range subdirs {
		if err := walkDirs(filepath.Join(dir, name), rel+"/"+name, fn); err != nil {
			return err
		}
	}
	return nil
}
