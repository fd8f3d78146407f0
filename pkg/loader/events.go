package loader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// ErrStop, returned by a record handler, ends Stream without an error.
var ErrStop = errors.New("stop")

// StreamOptions tune Stream.
type StreamOptions struct {
	// FlushEvery bounds how long a record may wait in the ring when the
	// kernel has not woken the reader (default 10ms). Flush runs then.
	FlushEvery time.Duration
	// Flush is called when the ring has been read empty at the end of a
	// FlushEvery period, and at the end: the moment to flush output.
	Flush func() error
	// Lost is called at most once a second, with the total, when the
	// count of events the ring had no room for has grown.
	Lost func(total uint64)
}

// Stats counts what a Stream saw.
type Stats struct {
	Events uint64 // records handled
	Lost   uint64 // records the kernel could not put into the ring
}

// Stream reads the "events" ring buffer and calls handle for each record
// (the slice is reused: copy what must outlive the call). It returns when
// ctx ends, after reading what the ring still holds, or when handle fails.
func (o *Objects) Stream(ctx context.Context, opts StreamOptions, handle func(raw []byte) error) (Stats, error) {
	var st Stats
	events, ok := o.Collection.Maps[eventsMap]
	if !ok {
		return st, fmt.Errorf("BPF object has no %q ring buffer", eventsMap)
	}
	lost := o.Collection.Maps[lostMap]
	rd, err := ringbuf.NewReader(events)
	if err != nil {
		return st, Explain("open ring buffer", err, false)
	}
	defer rd.Close()

	if opts.FlushEvery <= 0 {
		opts.FlushEvery = 10 * time.Millisecond
	}
	flush := func() error {
		if opts.Flush != nil {
			return opts.Flush()
		}
		return nil
	}
	checkLost := func() {
		n := sumLost(lost)
		if n > st.Lost {
			st.Lost = n
			if opts.Lost != nil {
				opts.Lost(n)
			}
		}
	}

	// Cancellation makes the reader return what is left, then ErrFlushed.
	stop := context.AfterFunc(ctx, func() { _ = rd.Flush() })
	defer stop()

	var rec ringbuf.Record
	nextLostCheck := time.Now().Add(time.Second)
	rd.SetDeadline(time.Now().Add(opts.FlushEvery))
	for {
		err := rd.ReadInto(&rec)
		switch {
		case err == nil:
			st.Events++
			if st.Events%4096 == 0 && time.Now().After(nextLostCheck) {
				checkLost()
				nextLostCheck = time.Now().Add(time.Second)
			}
			if err := handle(rec.RawSample); err != nil {
				if errors.Is(err, ErrStop) {
					err = nil
				}
				checkLost()
				return st, errors.Join(err, flush())
			}
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			if err := flush(); err != nil {
				return st, err
			}
			if now := time.Now(); now.After(nextLostCheck) {
				checkLost()
				nextLostCheck = now.Add(time.Second)
			}
			rd.SetDeadline(time.Now().Add(opts.FlushEvery))
		case errors.Is(err, ringbuf.ErrFlushed):
			checkLost()
			return st, flush()
		default:
			return st, fmt.Errorf("read ring buffer: %w", err)
		}
	}
}

// sumLost adds up the per-CPU lost counters.
func sumLost(m *ebpf.Map) uint64 {
	if m == nil {
		return 0
	}
	var perCPU []uint64
	if err := m.Lookup(uint32(0), &perCPU); err != nil {
		return 0
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n
}

// Lost is the sum of the per-CPU `lost` counter of common.h: records the
// ring buffer had no room for, or, for tools that keep their results in
// maps, entries those maps had no room for.
func (o *Objects) Lost() uint64 { return sumLost(o.Collection.Maps[lostMap]) }
