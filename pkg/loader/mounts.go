package loader

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Where bpfkit expects the BPF and tracing filesystems.
const (
	BPFFSPath   = "/sys/fs/bpf"
	TracefsPath = "/sys/kernel/tracing"
	debugfsPath = "/sys/kernel/debug"
)

// mountedAs reports whether path is the root of a filesystem with magic.
func mountedAs(path string, magic int64) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return int64(st.Type) == magic
}

func ensureMount(path, fstype string, magic int64) error {
	if mountedAs(path, magic) {
		return nil
	}
	if err := os.MkdirAll(path, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := unix.Mount(fstype, path, fstype, 0, ""); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("mount %s at %s: %w", fstype, path, ErrPrivileges)
		}
		return fmt.Errorf("mount %s at %s: %w", fstype, path, err)
	}
	return nil
}

// EnsureBPFFS mounts the BPF filesystem at /sys/fs/bpf unless it is there.
func EnsureBPFFS() error { return ensureMount(BPFFSPath, "bpf", unix.BPF_FS_MAGIC) }

// EnsureTracefs mounts tracefs at /sys/kernel/tracing unless it is there,
// which tracepoint attachment and hook probing need.
func EnsureTracefs() error {
	if mountedAs(TracefsPath, unix.TRACEFS_MAGIC) {
		return nil
	}
	// Old kernels only offer tracefs below debugfs.
	if mountedAs(debugfsPath+"/tracing", unix.TRACEFS_MAGIC) {
		return nil
	}
	return ensureMount(TracefsPath, "tracefs", unix.TRACEFS_MAGIC)
}

// tracefsRoot returns the mounted tracefs, preferring the modern location.
func tracefsRoot() string {
	if !mountedAs(TracefsPath, unix.TRACEFS_MAGIC) && mountedAs(debugfsPath+"/tracing", unix.TRACEFS_MAGIC) {
		return debugfsPath + "/tracing"
	}
	return TracefsPath
}
