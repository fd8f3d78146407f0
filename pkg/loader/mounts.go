package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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

// Cgroup2Root returns where the cgroup v2 hierarchy is mounted: on a
// hybrid system it is not /sys/fs/cgroup (/sys/fs/cgroup/unified, say).
func Cgroup2Root() (string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE ...
		pre, post, ok := strings.Cut(line, " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(pre); len(f) > 4 {
			return unescapeMount(f[4]), nil
		}
	}
	return "", errors.New("cgroup v2 is not mounted (mount -t cgroup2 none /sys/fs/cgroup/unified)")
}

// MemcgRoot returns where the memory controller's hierarchy is mounted: a
// cgroup v1 mount with the memory option (v1 true) where there is one (a
// hybrid system such as /sys/fs/cgroup/memory), else the cgroup v2 mount
// if memory is among its controllers.
func MemcgRoot() (root string, v1 bool, err error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", false, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(line, " - ")
		fields, super := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(super) < 3 || super[0] != "cgroup" {
			continue
		}
		for _, o := range strings.Split(super[2], ",") {
			if o == "memory" {
				return unescapeMount(fields[4]), true, nil
			}
		}
	}
	root, err = Cgroup2Root()
	if err != nil {
		return "", false, errors.New("the memory controller is not mounted (neither cgroup v1 with memory nor cgroup v2)")
	}
	ctrl, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil || !strings.Contains(" "+strings.TrimSpace(string(ctrl))+" ", " memory ") {
		return "", false, errors.New("the memory controller is not mounted (neither cgroup v1 with memory nor in cgroup v2's cgroup.controllers)")
	}
	return root, false, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
