package loader

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/internal/userfs"
)

// TaskFilter selects tasks in the kernel, before any event is made. The
// zero value selects every task. It maps onto the filter_* variables of
// bpf/include/common.h.
type TaskFilter struct {
	PID    uint32  // thread group (process) id
	TID    uint32  // thread id
	UID    *uint32 // user id (real); nil for any
	Comm   string  // task name, as in /proc/PID/comm (at most 15 bytes)
	Cgroup string  // path of a cgroup v2 directory
}

// Variables returns the filter as BPF variables for Options.Variables.
func (f TaskFilter) Variables() (map[string]any, error) {
	vars := map[string]any{
		"filter_pid": f.PID,
		"filter_tid": f.TID,
	}
	if f.UID != nil {
		vars["filter_uid_on"] = true
		vars["filter_uid"] = *f.UID
	}
	if f.Comm != "" {
		if len(f.Comm) > 15 {
			return nil, fmt.Errorf("task name %s is longer than the kernel's 15 bytes: give its first 15", flagval.Quote(f.Comm))
		}
		var comm [16]byte
		copy(comm[:], f.Comm)
		vars["filter_comm"] = comm
	}
	if f.Cgroup != "" {
		id, err := CgroupID(f.Cgroup)
		if err != nil {
			return nil, err
		}
		vars["filter_cgroup"] = id
	}
	return vars, nil
}

// CgroupID returns the id the kernel gives a cgroup v2 directory (its inode
// number), as bpf_get_current_cgroup_id reports it. The directory is
// opened with the invoking user's own rights (internal/userfs).
func CgroupID(path string) (uint64, error) {
	d, err := userfs.OpenDir(path)
	switch {
	case errors.Is(err, unix.ENOENT):
		return 0, fmt.Errorf("cgroup %s does not exist: give a directory of the cgroup v2 hierarchy, such as %s/system.slice", flagval.Cut(path), cgroup2Hint())
	case errors.Is(err, unix.ENOTDIR):
		return 0, fmt.Errorf("cgroup %s is not a directory: give a directory of the cgroup v2 hierarchy, such as %s/system.slice", flagval.Cut(path), cgroup2Hint())
	case err != nil:
		return 0, fmt.Errorf("cgroup %s: %w", flagval.Cut(path), err)
	}
	defer d.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(d.Fd()), &st); err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", path, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, fmt.Errorf("%s is not in a cgroup v2 hierarchy: give a directory below the cgroup2 mount (%s here)", flagval.Cut(path), cgroup2Hint())
	}
	var s unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &s); err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", path, err)
	}
	return s.Ino, nil
}

// cgroup2Hint names where cgroup v2 is mounted here, for messages.
func cgroup2Hint() string {
	if p, err := Cgroup2Root(); err == nil {
		return p
	}
	return "/sys/fs/cgroup"
}
