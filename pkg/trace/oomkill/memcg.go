package oomkill

import (
	"io/fs"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/bpfkit/bpfkit/pkg/loader"
)

// Memcgs names memory cgroup ids (the inode numbers of their directories)
// by their paths below the memory controller's mount.
type Memcgs struct {
	root  string
	known map[uint64]string
}

// NewMemcgs finds the memory controller's mount. Without one, every id is
// named by its number.
func NewMemcgs() (*Memcgs, error) {
	root, _, err := loader.MemcgRoot()
	if err != nil {
		root = ""
	}
	return &Memcgs{root: root, known: map[uint64]string{}}, nil
}

// Path returns the path of memory cgroup id: "/" for the root, "" for 0
// (no memcg), "#ID" when no directory has that id (removed since).
func (m *Memcgs) Path(id uint64) string {
	if id == 0 {
		return ""
	}
	if p, ok := m.known[id]; ok {
		return p
	}
	if m.root != "" {
		filepath.WalkDir(m.root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				rel, _ := filepath.Rel(m.root, path)
				m.known[st.Ino] = filepath.Clean("/" + rel)
			}
			return nil
		})
	}
	if p, ok := m.known[id]; ok {
		return p
	}
	return "#" + strconv.FormatUint(id, 10)
}
