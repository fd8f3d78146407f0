package vmtest

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Mode bits of the newc cpio format.
const (
	cpioModeDir     = 0o040000
	cpioModeFile    = 0o100000
	cpioModeSymlink = 0o120000
)

// CPIOWriter writes a "newc" (SVR4 without CRC) cpio archive, the format the
// Linux kernel accepts as an initramfs. Parent directories are created
// automatically.
type CPIOWriter struct {
	w     io.Writer
	ino   uint32
	dirs  map[string]bool
	n     int64
	err   error
	close bool
}

// NewCPIOWriter returns a writer that writes to w.
func NewCPIOWriter(w io.Writer) *CPIOWriter {
	return &CPIOWriter{w: w, ino: 1, dirs: map[string]bool{"": true, ".": true}}
}

func cleanName(name string) string {
	name = path.Clean("/" + name)
	return strings.TrimPrefix(name, "/")
}

func (c *CPIOWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
}

func (c *CPIOWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *CPIOWriter) header(name string, mode uint32, size int64, nlink uint32) {
	c.ino++
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, uint32(size), 0, 0, 0, 0, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write(append([]byte(name), 0))
	c.pad()
}

func (c *CPIOWriter) parents(name string) {
	dir := path.Dir(name)
	if dir == "." || c.dirs[dir] {
		return
	}
	c.parents(dir)
	c.dirs[dir] = true
	c.header(dir, cpioModeDir|0o755, 0, 2)
}

// Dir adds a directory.
func (c *CPIOWriter) Dir(name string, perm fs.FileMode) error {
	name = cleanName(name)
	if c.dirs[name] {
		return c.err
	}
	c.parents(name)
	c.dirs[name] = true
	c.header(name, cpioModeDir|uint32(perm.Perm()), 0, 2)
	return c.err
}

// File adds a regular file with the given content.
func (c *CPIOWriter) File(name string, perm fs.FileMode, data []byte) error {
	name = cleanName(name)
	c.parents(name)
	c.header(name, cpioModeFile|uint32(perm.Perm()), int64(len(data)), 1)
	c.write(data)
	c.pad()
	return c.err
}

// FileFrom adds a regular file copied from src on the host.
func (c *CPIOWriter) FileFrom(name string, perm fs.FileMode, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() > 0xffffffff {
		return fmt.Errorf("%s: too large for cpio", src)
	}
	name = cleanName(name)
	c.parents(name)
	c.header(name, cpioModeFile|uint32(perm.Perm()), st.Size(), 1)
	if c.err == nil {
		n, err := io.Copy(c.w, f)
		c.n += n
		if err == nil && n != st.Size() {
			err = fmt.Errorf("%s: changed size while copying", src)
		}
		c.err = err
	}
	c.pad()
	return c.err
}

// Symlink adds a symbolic link name pointing to target.
func (c *CPIOWriter) Symlink(name, target string) error {
	name = cleanName(name)
	c.parents(name)
	c.header(name, cpioModeSymlink|0o777, int64(len(target)), 1)
	c.write([]byte(target))
	c.pad()
	return c.err
}

// Tree copies the host directory src recursively to name. Symlinks are kept
// as symlinks; other special files are skipped.
func (c *CPIOWriter) Tree(name, src string) error {
	var paths []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	for _, p := range paths {
		rel, _ := filepath.Rel(src, p)
		dst := path.Join(name, filepath.ToSlash(rel))
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case st.Mode().IsDir():
			err = c.Dir(dst, st.Mode())
		case st.Mode().IsRegular():
			err = c.FileFrom(dst, st.Mode(), p)
		case st.Mode()&fs.ModeSymlink != 0:
			var target string
			if target, err = os.Readlink(p); err == nil {
				err = c.Symlink(dst, target)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Close writes the trailer. It does not close the underlying writer.
func (c *CPIOWriter) Close() error {
	if c.close {
		return c.err
	}
	c.close = true
	c.header("TRAILER!!!", 0, 0, 1)
	if r := c.n % 512; r != 0 {
		c.write(make([]byte, 512-r))
	}
	return c.err
}
