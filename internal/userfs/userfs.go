// Package userfs opens the paths a user names on bpfkit's command line
// (output files, rule files, cgroup directories) with that user's own
// rights: the real uid and gid, and none of the capabilities the process
// may hold. bpfkit needs CAP_BPF and CAP_PERFMON to load programs; those
// must never let it read or write a file its user could not.
//
// As root (real uid 0) a path is opened as usual. Otherwise the open runs
// on an OS thread of its own whose filesystem uid and gid are set to the
// real ones and whose effective capabilities are cleared; the thread is
// thrown away afterwards, so no other goroutine ever runs with them.
package userfs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// asInvoker runs fn with the filesystem rights of the invoking user.
func asInvoker(fn func() error) error {
	uid, gid := unix.Getuid(), unix.Getgid()
	if uid == 0 && gid == 0 {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread exits with this goroutine, so the
		// credentials changed below die with it.
		runtime.LockOSThread()
		done <- dropRights(uid, gid, fn)
	}()
	return <-done
}

func dropRights(uid, gid int, fn func() error) error {
	// setfsuid/setfsgid to the real ids needs no capability and affects
	// only this thread; they return the previous id, errors unseen.
	unix.RawSyscall(unix.SYS_SETFSGID, uintptr(gid), 0, 0)
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(uid), 0, 0)
	if int(unixFsid(unix.SYS_SETFSUID)) != uid || int(unixFsid(unix.SYS_SETFSGID)) != gid {
		return errors.New("cannot take the invoking user's file rights")
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	data[0].Effective, data[1].Effective = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("drop capabilities: %w", err)
	}
	return fn()
}

// unixFsid reads the current fsuid or fsgid: setfs[ug]id(-1) changes
// nothing and returns it.
func unixFsid(nr uintptr) uintptr {
	r, _, _ := unix.RawSyscall(nr, ^uintptr(0), 0, 0)
	return r
}

func open(path string, flag int, perm uint32) (*os.File, error) {
	var f *os.File
	err := asInvoker(func() error {
		fd, err := unix.Open(path, flag|unix.O_CLOEXEC, perm)
		if err != nil {
			return &os.PathError{Op: "open", Path: path, Err: err}
		}
		f = os.NewFile(uintptr(fd), path)
		return nil
	})
	return f, err
}

// ReadFile reads a file the user named, refusing one larger than max bytes
// (before reading it all) and anything that is not a regular file or a
// pipe.
func ReadFile(path string, max int64) ([]byte, error) {
	f, err := open(path, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a file", path)
	}
	if st.Mode().IsRegular() && st.Size() > max {
		return nil, fmt.Errorf("%s is %d bytes: at most %d are read", path, st.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes: at most that is read", path, max)
	}
	return b, nil
}

// OpenDir opens a directory the user named, for fstat and fstatfs.
func OpenDir(path string) (*os.File, error) {
	return open(path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
}

// Output is a file being written for the user. A regular file (or a new
// one) is written to a temporary file beside it and renamed over it by
// Commit, so a run that fails leaves what was there intact; a device or a
// pipe is written in place.
type Output struct {
	*os.File
	path string // where the result goes
	tmp  string // the temporary file, or "" when written in place
}

// Create starts writing path ("-" is standard output).
func Create(path string) (*Output, error) {
	if path == "-" {
		return &Output{File: os.Stdout, path: path}, nil
	}
	var st unix.Stat_t
	err := asInvoker(func() error { return unix.Stat(path, &st) })
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return nil, fmt.Errorf("%s is a directory: name a file in it", path)
	case err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG:
		f, err := open(path, unix.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		return &Output{File: f, path: path}, nil
	case err != nil && !errors.Is(err, unix.ENOENT):
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".bpfkit-"+hex.EncodeToString(rnd[:]))
	f, err := open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o666)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			pe.Path = path // the user named path, not our temporary name
		}
		return nil, err
	}
	return &Output{File: f, path: path, tmp: tmp}, nil
}

// Commit closes the file and puts it in place.
func (o *Output) Commit() error {
	if o.File == os.Stdout {
		return nil
	}
	if err := o.File.Close(); err != nil {
		o.remove()
		return err
	}
	if o.tmp == "" {
		return nil
	}
	err := asInvoker(func() error { return os.Rename(o.tmp, o.path) })
	if err != nil {
		o.remove()
		return err
	}
	o.tmp = ""
	return nil
}

// Abort closes the file and removes what was written, leaving the old
// file as it was. It does nothing after Commit.
func (o *Output) Abort() {
	if o.File == os.Stdout {
		return
	}
	o.File.Close()
	o.remove()
}

func (o *Output) remove() {
	if o.tmp != "" {
		_ = asInvoker(func() error { return os.Remove(o.tmp) })
		o.tmp = ""
	}
}

// Open opens a file the user named, read-only: a namespace file, say.
func Open(path string) (*os.File, error) {
	return open(path, unix.O_RDONLY, 0)
}
