package trace

import (
	"slices"
	"syscall"

	"github.com/cilium/ebpf"
)

// Stack keys, as bpf/include/stack.h makes them: a stack's frames are kept
// once, in the tool's map `stacks`, under a 64-bit hash of them.

// StackNone is the key of a stack the program did not take.
const StackNone = 0

// StackErr returns the error key holds in place of a stack: why the
// program lost it (EFAULT: there is no user stack, as in a kernel thread;
// E2BIG: the map was full; EBUSY: another thread took this CPU's scratch
// meanwhile), or nil for a stack's key and StackNone.
func StackErr(key uint64) error {
	const firstErr = 1<<64 - 4095 // (u64)-4095: the errnos, negated
	if key < firstErr {
		return nil
	}
	return syscall.Errno(-int64(key))
}

// StackFrames reads the frames of the stack under key in m (stack.h's
// `stacks`), innermost first, into buf (of the map's depth) and returns
// them; false if key is no stack's or m has none under it.
func StackFrames(m *ebpf.Map, key uint64, buf []uint64) ([]uint64, bool) {
	if key == StackNone || StackErr(key) != nil {
		return nil, false
	}
	if err := m.Lookup(key, buf); err != nil {
		return nil, false
	}
	n := slices.Index(buf, 0)
	if n < 0 {
		n = len(buf)
	}
	return buf[:n], true
}
