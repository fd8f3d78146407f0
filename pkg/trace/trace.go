// Package trace holds what bpfkit's tracers share on the Go side: turning
// kernel timestamps into wall-clock time and kernel strings into Go ones.
// Each tracer lives in a subpackage (opensnoop, ...) and looks the same:
// New(Config) loads and attaches, Run(ctx, emit) streams Go-native events,
// Close detaches.
package trace

import (
	"bytes"
	"time"

	"golang.org/x/sys/unix"
)

// Clock converts CLOCK_BOOTTIME nanoseconds (bpf_ktime_get_boot_ns) to
// wall-clock time. The offset is taken once, so converting costs nothing.
type Clock struct {
	offset int64 // realtime - boottime, ns
}

// NewClock measures the offset between boot time and wall-clock time now:
// a boot-time read between two wall-clock reads, the midpoint of the
// closest pair of several (a thread preempted between the reads would
// otherwise put the offset off by as long as it waited: milliseconds on a
// loaded machine).
func NewClock() Clock {
	var c Clock
	best := int64(-1)
	for range 8 {
		var boot, real1, real2 unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_REALTIME, &real1)
		_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot)
		_ = unix.ClockGettime(unix.CLOCK_REALTIME, &real2)
		if window := real2.Nano() - real1.Nano(); best < 0 || window < best {
			best = window
			c.offset = (real1.Nano()+real2.Nano())/2 - boot.Nano()
		}
		if best < 2000 {
			break
		}
	}
	return c
}

// Time returns the wall-clock time of a boot-time timestamp.
func (c Clock) Time(bootNS uint64) time.Time {
	return time.Unix(0, int64(bootNS)+c.offset)
}

// CString returns b up to its first NUL.
func CString[T ~int8 | ~uint8](b []T) []byte {
	raw := unsafeBytes(b)
	if i := bytes.IndexByte(raw, 0); i >= 0 {
		return raw[:i]
	}
	return raw
}
