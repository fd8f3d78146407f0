package loader

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Capability numbers newer than some x/sys releases name.
const (
	capPerfmon = 38
	capBPF     = 39
)

// ErrPrivileges says which capabilities a tool lacks and how to grant them.
var ErrPrivileges = errors.New("bpfkit needs root, or the capabilities CAP_BPF and CAP_PERFMON " +
	"(plus CAP_DAC_OVERRIDE to use tracefs and CAP_SYS_ADMIN to mount it): " +
	"run it with sudo, or grant them with `setcap cap_bpf,cap_perfmon,cap_dac_override+ep bpfkit`")

// effectiveCaps returns the current thread's effective capability bits.
func effectiveCaps() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	return uint64(data[0].Effective) | uint64(data[1].Effective)<<32, nil
}

func hasCap(caps uint64, c int) bool { return caps&(1<<uint(c)) != 0 }

// CheckPrivileges fails with ErrPrivileges unless the process may load and
// attach tracing programs: CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON.
func CheckPrivileges() error {
	caps, err := effectiveCaps()
	if err != nil {
		return err
	}
	if hasCap(caps, unix.CAP_SYS_ADMIN) || (hasCap(caps, capBPF) && hasCap(caps, capPerfmon)) {
		return nil
	}
	return ErrPrivileges
}
