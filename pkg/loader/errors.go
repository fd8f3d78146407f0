package loader

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ErrNoBTF means the kernel exposes no BTF, which CO-RE relocation needs.
var ErrNoBTF = errors.New("the kernel has no BTF (/sys/kernel/btf/vmlinux is missing): " +
	"bpfkit needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions since 5.4 do)")

// verifierTail is how many lines of a verifier log a one-line error shows.
const verifierTail = 3

// Explain turns a load or attach error into one line that says what to do
// (also for packages that load programs themselves, like pkg/xdp).
// With debug, a verifier rejection carries the whole log instead.
func Explain(what string, err error, debug bool) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.As(err, &ve):
		if debug {
			return fmt.Errorf("%s: the verifier rejected it:\n%+v", what, ve)
		}
		lines := ve.Log
		if n := len(lines); n > 0 && strings.HasPrefix(lines[n-1], "processed ") {
			lines = lines[:n-1]
		}
		if len(lines) > verifierTail {
			lines = lines[len(lines)-verifierTail:]
		}
		for i := range lines {
			lines[i] = strings.TrimSpace(lines[i])
		}
		return fmt.Errorf("%s: the verifier rejected it (%s): %s (run with --debug for the full log)",
			what, ve.Cause, strings.Join(lines, " | "))
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%s: %w", what, ErrPrivileges)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%s: not supported by this kernel: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
