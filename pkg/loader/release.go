package loader

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// releasePerfEventsLater makes closing links fast when they attach
// programs through perf events (tracepoint programs on 5.15+, where the
// link is a BPF link of its own): closing the link detaches the program at
// once, but the last close of the perf event waits, under the kernel's
// event_mutex, for RCU grace periods before it frees the event's buffers
// (perf_trace_event_unreg). syscount has one per syscall event, about 350:
// ten seconds, one after the other, before the process could exit.
//
// It puts a reference to each such perf event in a perf event array and
// returns a function that closes that map, to call once the links are
// closed. The map's entries are then dropped after an RCU grace period,
// from RCU's callback, and a file's last reference dropped there is closed
// by a kernel worker (fput's delayed work): the perf events are freed in
// the background, with no program attached to them any more. Links that
// are not BPF links (5.10's PERF_EVENT_IOC_SET_BPF, where only the perf
// event's close detaches the program) are left to close as before.
func releasePerfEventsLater(links []link.Link) (func(), error) {
	var pes []link.PerfEvent
	for _, l := range links {
		pe, ok := l.(link.PerfEvent)
		if !ok {
			continue
		}
		if _, err := l.Info(); err != nil {
			continue // not a BPF link: the perf event's close detaches
		}
		pes = append(pes, pe)
	}
	if len(pes) == 0 {
		return func() {}, nil
	}
	m, err := newPerfEventArray(len(pes))
	if err != nil {
		// Closing the links frees the perf events, only slower.
		return func() {}, nil
	}
	var errs []error
	for i, pe := range pes {
		f, err := pe.PerfEvent()
		if err != nil {
			continue
		}
		if err := m.Update(uint32(i), uint32(f.Fd()), ebpf.UpdateAny); err != nil && len(errs) == 0 {
			errs = append(errs, fmt.Errorf("hold a perf event for release: %w", err))
		}
		f.Close()
	}
	return func() { m.Close() }, errors.Join(errs...)
}

// newPerfEventArray creates a perf event array of n entries. It is made by
// hand: the library clamps a perf event array to one entry per CPU, the
// size perf buffers need.
func newPerfEventArray(n int) (*ebpf.Map, error) {
	attr := struct {
		mapType, keySize, valueSize, maxEntries uint32
	}{uint32(ebpf.PerfEventArray), 4, 4, uint32(n)}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return nil, fmt.Errorf("create a perf event array: %w", errno)
	}
	m, err := ebpf.NewMapFromFD(int(fd))
	if err != nil {
		unix.Close(int(fd))
		return nil, err
	}
	return m, nil
}
