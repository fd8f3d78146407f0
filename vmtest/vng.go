package vmtest

import (
	"os"
	"strings"
	"time"
)

// VngArgs returns the command line (starting with "vng") that runs binary
// with args as root in a virtme-ng VM booting image, in directory dir, with
// env set. extra are additional vng flags, e.g. from $VMTEST_VNG_FLAGS
// ("--disable-kvm --force-9p"). vng's own init does not mount bpffs; bpfkit
// tests mount /sys/fs/bpf themselves when it is missing.
func VngArgs(image, dir string, env []string, extra []string, binary string, args []string) []string {
	cmd := []string{"vng", "--run", image, "--user", "root"}
	if dir != "" {
		cmd = append(cmd, "--cwd", dir)
	}
	cmd = append(cmd, extra...)
	cmd = append(cmd, "--", "env")
	cmd = append(cmd, env...)
	cmd = append(cmd, binary)
	return append(cmd, args...)
}

// VngFlags returns the extra vng flags: $VMTEST_VNG_FLAGS, plus
// --disable-kvm when hardware KVM is unusable.
func VngFlags() []string {
	flags := strings.Fields(os.Getenv("VMTEST_VNG_FLAGS"))
	if Accel() != "kvm" && !contains(flags, "--disable-kvm") {
		flags = append(flags, "--disable-kvm")
	}
	return flags
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestTimeout returns the VM timeout for a test binary invoked with args:
// the binary's -test.timeout plus a margin for booting, 10m+2m if not given,
// 1h if the test timeout is disabled (0).
func TestTimeout(args []string) time.Duration {
	const margin = 2 * time.Minute
	d := 10 * time.Minute
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		var v string
		switch {
		case strings.HasPrefix(a, "test.timeout="):
			v = strings.TrimPrefix(a, "test.timeout=")
		case a == "test.timeout" && i+1 < len(args):
			v = args[i+1]
		default:
			continue
		}
		if t, err := time.ParseDuration(v); err == nil {
			d = t
		}
	}
	if d == 0 {
		return time.Hour
	}
	return d + margin
}
