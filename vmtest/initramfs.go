package vmtest

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/bpfkit/bpfkit/vmtest/guest"
)

// GuestBinDir is where the test binary is stored in the initramfs.
const GuestBinDir = "/vmtest/bin"

// InitramfsSpec describes the contents of a VM's initramfs.
type InitramfsSpec struct {
	Init     string       // host path of the static init (vminit)
	Config   guest.Config // written to guest.ConfigPath; Modules is filled in
	Binary   string       // host path of the test binary, stored in GuestBinDir
	Kernel   *Kernel      // its config goes to /boot/config-RELEASE
	Modules  []string     // module names (resolved against Kernel.ModDir)
	Dirs     []string     // host directories copied to the same path (non-recursive files + testdata/)
	Files    []string     // host files copied to the same path
	Warnings func(string) // receives non-fatal problems
	index    *ModuleIndex
}

// GuestBinary returns the guest path of the test binary.
func (s *InitramfsSpec) GuestBinary() string {
	return path.Join(GuestBinDir, filepath.Base(s.Binary))
}

func (s *InitramfsSpec) warn(format string, args ...any) {
	if s.Warnings != nil {
		s.Warnings(fmt.Sprintf(format, args...))
	}
}

// maxDirFile limits the size of files copied from a package directory.
const maxDirFile = 32 << 20

// WriteInitramfs writes the initramfs to out (a newc cpio archive).
func WriteInitramfs(out string, s *InitramfsSpec) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	c := NewCPIOWriter(bw)
	if err := s.write(c); err != nil {
		f.Close()
		return err
	}
	if err := c.Close(); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (s *InitramfsSpec) write(c *CPIOWriter) error {
	for _, d := range []string{"/proc", "/sys", "/dev", "/run", "/root", "/etc", "/boot", "/sys/fs/bpf"} {
		if err := c.Dir(d, 0o755); err != nil {
			return err
		}
	}
	if err := c.Dir("/tmp", 0o777|os.ModeSticky); err != nil {
		return err
	}
	if err := c.File("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n")); err != nil {
		return err
	}
	if err := c.File("/etc/group", 0o644, []byte("root:x:0:\n")); err != nil {
		return err
	}
	if err := c.File("/etc/hosts", 0o644, []byte("127.0.0.1 localhost\n::1 localhost\n")); err != nil {
		return err
	}
	if err := c.FileFrom("/init", 0o755, s.Init); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if s.Binary != "" {
		if err := c.FileFrom(s.GuestBinary(), 0o755, s.Binary); err != nil {
			return fmt.Errorf("test binary: %w", err)
		}
	}
	if s.Kernel != nil && s.Kernel.Config != "" && s.Kernel.Release != "" {
		if err := c.FileFrom("/boot/config-"+s.Kernel.Release, 0o644, s.Kernel.Config); err != nil {
			return err
		}
	}
	cfg := s.Config
	cfg.Modules = nil
	if len(s.Modules) > 0 && s.Kernel != nil && s.Kernel.ModDir != "" {
		idx := s.index
		if idx == nil {
			var err error
			if idx, err = IndexModules(s.Kernel.ModDir); err != nil {
				return err
			}
		}
		order, missing, err := idx.Resolve(s.Modules)
		if err != nil {
			return err
		}
		for _, m := range missing {
			s.warn("module %s is neither a module nor built into %s", m, s.Kernel.Release)
		}
		for i, m := range order {
			data, err := idx.Content(m)
			if err != nil {
				return err
			}
			p := fmt.Sprintf("/vmtest/modules/%02d-%s.ko", i, m)
			if err := c.File(p, 0o644, data); err != nil {
				return err
			}
			cfg.Modules = append(cfg.Modules, p)
		}
	}
	for _, d := range s.Dirs {
		if err := copyPackageDir(c, d); err != nil {
			return err
		}
	}
	for _, f := range s.Files {
		if err := c.FileFrom(f, 0o755, f); err != nil {
			return err
		}
	}
	js, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return c.File(guest.ConfigPath, 0o644, js)
}

// copyPackageDir copies the regular files of dir (not recursively) and its
// testdata/ tree, so tests find testdata relative to their working directory.
func copyPackageDir(c *CPIOWriter, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if err := c.Dir(dir, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.Name() == "testdata" && e.IsDir() {
			if err := c.Tree(p, p); err != nil {
				return err
			}
			continue
		}
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Size() > maxDirFile {
			continue
		}
		if err := c.FileFrom(p, info.Mode(), p); err != nil {
			return err
		}
	}
	return nil
}

// IsStatic reports whether the ELF binary has no program interpreter.
func IsStatic(bin string) (bool, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}
