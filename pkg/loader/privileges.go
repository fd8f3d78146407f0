package loader

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrPrivileges says what a tool lacks and how to get it. bpfkit is meant
// to run as root (sudo); a service may be given the capabilities as
// ambient ones instead (docs/privileges.md). It never advises file
// capabilities: see RefuseSetID.
var ErrPrivileges = errors.New("root privileges needed: run bpfkit with sudo " +
	"(a service may instead get CAP_BPF and CAP_PERFMON, plus CAP_DAC_READ_SEARCH for tracefs, as ambient capabilities: see docs/privileges.md)")

// ErrMemlock says that this kernel (before 5.11) counts BPF maps against
// RLIMIT_MEMLOCK and the process may not raise it.
var ErrMemlock = errors.New("this kernel (before 5.11) counts BPF memory against the memlock limit, which only root may lift: " +
	"run bpfkit with sudo, or give the service CAP_SYS_RESOURCE or LimitMEMLOCK=infinity (see docs/privileges.md)")

// ErrTracefsAccess says that tracefs, where tracepoints are looked up, is
// closed to this process: root's alone, and no CAP_DAC_READ_SEARCH.
var ErrTracefsAccess = errors.New("tracefs (" + TracefsPath + ") is readable by root only: run bpfkit with sudo, " +
	"or give it CAP_DAC_READ_SEARCH too (see docs/privileges.md)")

// ErrPerfEventsRestricted says that this kernel lets only CAP_SYS_ADMIN
// open perf events, which plain tracepoints and uprobes attach through.
var ErrPerfEventsRestricted = errors.New("this kernel lets only CAP_SYS_ADMIN open perf events (kernel.perf_event_paranoid above 2, " +
	"as on Debian), and plain tracepoints and uprobes attach through them: run bpfkit with sudo, give the service CAP_SYS_ADMIN too, " +
	"or set kernel.perf_event_paranoid=2 (see docs/privileges.md)")

// PerfEventError is err from opening a perf event (attaching a plain
// tracepoint or a uprobe), or ErrPerfEventsRestricted when that is why it
// was refused.
func PerfEventError(err error) error {
	if !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) {
		return err
	}
	restricted, rerr := PerfEventsRestricted()
	caps, cerr := effectiveCaps()
	if rerr != nil || cerr != nil || !restricted || hasCap(caps, unix.CAP_SYS_ADMIN) {
		return err
	}
	return ErrPerfEventsRestricted
}

// PerfEventsRestricted reports whether this kernel lets only CAP_SYS_ADMIN
// open perf events: kernel.perf_event_paranoid above 2, which Debian's
// kernels (CONFIG_SECURITY_PERF_EVENTS_RESTRICT) take as "no perf event
// without CAP_SYS_ADMIN".
func PerfEventsRestricted() (bool, error) {
	b, err := os.ReadFile("/proc/sys/kernel/perf_event_paranoid")
	if err != nil {
		return false, err
	}
	level, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return level > 2, err
}

// atSecure is the auxiliary vector entry the kernel sets to 1 when the
// program gained privileges at exec: setuid, setgid or file capabilities.
const atSecure = 23

// RefuseSetID fails when bpfkit was started with privileges its user did
// not have (setuid, setgid or file capabilities). Such a copy would let
// anyone who can run it trace every process on the machine and change its
// XDP filters, so bpfkit does not support it.
func RefuseSetID() error {
	auxv, err := unix.Auxv()
	if err != nil {
		return fmt.Errorf("read the auxiliary vector: %w", err)
	}
	for _, kv := range auxv {
		if kv[0] == atSecure && kv[1] != 0 {
			exe, _ := os.Executable()
			if exe == "" {
				exe = "bpfkit"
			}
			return fmt.Errorf("this copy has file capabilities or setuid, which bpfkit does not support (anyone who can run it could trace every process): "+
				"remove them (sudo setcap -r %s; sudo chmod u-s,g-s %s) and run it with sudo", exe, exe)
		}
	}
	return nil
}

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
	if hasCap(caps, unix.CAP_SYS_ADMIN) || (hasCap(caps, unix.CAP_BPF) && hasCap(caps, unix.CAP_PERFMON)) {
		return nil
	}
	return ErrPrivileges
}
