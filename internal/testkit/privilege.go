package testkit

import (
	"encoding/binary"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// WithAmbientCaps gives cmd (already made to run AsUser) the capabilities
// caps as ambient ones: what a service unit's AmbientCapabilities= does.
func WithAmbientCaps(cmd *exec.Cmd, caps ...uintptr) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.AmbientCaps = append(cmd.SysProcAttr.AmbientCaps, caps...)
}

// SetFileCaps gives the file at path the capabilities caps, permitted and
// effective, as `setcap CAPS+ep path` does (xattr security.capability,
// revision 2), and fails the test unless the filesystem honours them.
func SetFileCaps(t testing.TB, path string, caps ...uintptr) {
	t.Helper()
	var perm [2]uint32
	for _, c := range caps {
		perm[c/32] |= 1 << (c % 32)
	}
	const (
		revision2 = 0x02000000
		effective = 0x000001
	)
	var b [20]byte
	binary.LittleEndian.PutUint32(b[0:], revision2|effective)
	binary.LittleEndian.PutUint32(b[4:], perm[0])  // permitted, low
	binary.LittleEndian.PutUint32(b[12:], perm[1]) // permitted, high
	if err := unix.Setxattr(path, "security.capability", b[:], 0); err != nil {
		t.Fatalf("setcap %s: %v", path, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Flags&unix.ST_NOSUID != 0 {
		t.Fatalf("%s is on a nosuid mount: its file capabilities would be ignored", path)
	}
}
