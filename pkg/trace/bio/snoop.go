package bio

import (
	"context"
	"fmt"
	"time"
	"unsafe"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// Event is one completed request. Comm and RWBS point into buffers that
// are reused: they are valid only until the emit callback returns.
type Event struct {
	Time    time.Time // completion
	PID     uint32    // submitter's process id; 0 for a kernel thread
	Comm    []byte    // submitter's name
	Disk    string    // partition or disk, as /proc/partitions names it
	Dev     uint32    // kernel dev_t of Disk
	RWBS    []byte    // request type, as blktrace writes it (R, WS, FWFS...)
	Sector  uint64    // first sector, from the start of the disk
	Bytes   uint32
	Queue   time.Duration // start to issue; 0 when issued at once
	Service time.Duration // issue to completion
	Cgroup  uint64        // submitter's cgroup v2 id
}

// Snoop streams one Event per request (biosnoop).
type Snoop struct {
	*tracer
	clock trace.Clock
	ev    Event
	rwbs  []byte
}

// NewSnoop loads and attaches biosnoop's programs.
func NewSnoop(cfg Config) (*Snoop, error) {
	t, err := newTracer(cfg, modeEvents, cfg.RingSize)
	if err != nil {
		return nil, err
	}
	return &Snoop{tracer: t, clock: trace.NewClock()}, nil
}

// Run streams events to emit until ctx ends (then drains what is queued)
// or emit returns an error (loader.ErrStop ends it without one).
func (s *Snoop) Run(ctx context.Context, opts loader.StreamOptions, emit func(*Event) error) (loader.Stats, error) {
	return s.objs.Stream(ctx, opts, func(raw []byte) error {
		if err := s.decode(raw); err != nil {
			return err
		}
		return emit(&s.ev)
	})
}

const eventSize = int(unsafe.Sizeof(bioBioEvent{}))

func (s *Snoop) decode(raw []byte) error {
	if len(raw) < eventSize {
		return fmt.Errorf("short biosnoop record: %d bytes", len(raw))
	}
	h := (*bioBioEvent)(unsafe.Pointer(&raw[0]))
	e := &s.ev
	e.Time = s.clock.Time(h.BootNs)
	e.PID = h.Pid
	e.Comm = trace.CString(h.Comm[:])
	if e.Dev != h.Dev || e.Disk == "" {
		e.Dev, e.Disk = h.Dev, s.disks.Name(h.Dev)
	}
	s.rwbs = s.flags.appendRWBS(s.rwbs[:0], h.CmdFlags)
	e.RWBS = s.rwbs
	e.Sector, e.Bytes = h.Sector, h.Bytes
	e.Queue, e.Service = time.Duration(h.QueueNs), time.Duration(h.ServiceNs)
	e.Cgroup = h.Cgroup
	return nil
}
