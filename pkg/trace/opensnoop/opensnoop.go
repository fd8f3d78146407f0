// Package opensnoop traces open(2), openat(2) and openat2(2) as they
// return: who opened what, with which flags, and what came back.
package opensnoop

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// Tool describes opensnoop to its command, to `bpfkit check` and to serve.
var Tool = tool.Descriptor{
	Name:    "opensnoop",
	Kind:    tool.Stream,
	Summary: "Trace open(2), openat(2) and openat2(2) as they return",
	Spec:    loadOpensnoop,
	Hooks:   loader.Options{AlsoAttach: AlsoAttach},
}

// Config selects what is traced. Every filter runs in the kernel.
type Config struct {
	Filter     loader.TaskFilter
	FailedOnly bool // only calls that returned an error
	FullPath   bool // resolve the absolute path in the kernel
	RingSize   int  // bytes; 0 for loader.DefaultRingSize
	Debug      bool // full verifier log on rejection
}

// Event is one open call. The byte slices point into a buffer that is
// reused: they are valid only until the emit callback returns.
type Event struct {
	Time     time.Time
	PID      uint32
	TID      uint32
	UID      uint32
	Comm     []byte
	FD       int32         // the returned descriptor, or -1
	Errno    syscall.Errno // 0 on success
	Flags    uint32        // O_* flags as passed
	Mode     uint32        // permission bits as passed (used with O_CREAT, O_TMPFILE)
	Path     []byte        // the name as passed (see NameUnread)
	FullPath []byte        // absolute path; with Config.FullPath only
	// NameUnread is set when the name was no longer in the caller's memory
	// when the call returned (another thread dropped the page, or the
	// kernel was moving it). Path is then the opened file's absolute path,
	// or empty for a call that failed.
	NameUnread bool
	// FullPathFromName is set when the call failed, so FullPath was put
	// together from the directory (cwd or dirfd) and the name passed.
	FullPathFromName  bool
	PathTruncated     bool // Path was longer than 4095 bytes
	FullPathTruncated bool
}

// AlsoAttach puts the one exit program on every open syscall's exit.
var AlsoAttach = map[string][]string{
	"exit_open": {"tracepoint/syscalls/sys_exit_open", "tracepoint/syscalls/sys_exit_openat2"},
}

// Tracer is attached from New until Close.
type Tracer struct {
	objs  *loader.Objects
	clock trace.Clock
	ev    Event
	full  []byte
	// fullPath is Config.FullPath: the kernel also sends the file's path
	// without it when the name could not be read (Event.NameUnread).
	fullPath bool
}

// New loads opensnoop's programs with cfg and attaches them.
func New(cfg Config) (*Tracer, error) {
	spec, err := loadOpensnoop()
	if err != nil {
		return nil, err
	}
	var knobs opensnoopVariableSpecs
	if err := spec.Assign(&knobs); err != nil {
		return nil, err
	}
	if err := errors.Join(knobs.OnlyFailed.Set(cfg.FailedOnly), knobs.WantFullPath.Set(cfg.FullPath)); err != nil {
		return nil, fmt.Errorf("configure opensnoop: %w", err)
	}
	vars, err := cfg.Filter.Variables()
	if err != nil {
		return nil, err
	}
	objs, err := Tool.Load(spec, loader.Options{
		Variables: vars,
		RingSize:  cfg.RingSize,
		Debug:     cfg.Debug,
	})
	if err != nil {
		return nil, err
	}
	return &Tracer{objs: objs, clock: trace.NewClock(), fullPath: cfg.FullPath}, nil
}

// Dropped lists the hooks this kernel lacks (for example openat2 before 5.6).
func (t *Tracer) Dropped() map[string]error { return t.objs.Dropped }

// Health reports the records the ring had no room for, the runs the
// kernel skipped and the hooks this kernel lacks.
func (t *Tracer) Health() loader.Health { return t.objs.Health() }

// Run streams events to emit until ctx ends (then drains what is queued)
// or emit returns an error (loader.ErrStop ends it without one).
func (t *Tracer) Run(ctx context.Context, opts loader.StreamOptions, emit func(*Event) error) (loader.Stats, error) {
	return t.objs.Stream(ctx, opts, func(raw []byte) error {
		if err := t.decode(raw); err != nil {
			return err
		}
		return emit(&t.ev)
	})
}

// Close detaches and frees everything.
func (t *Tracer) Close() error { return t.objs.Close() }

const headerSize = int(unsafe.Sizeof(opensnoopOpenEvent{}))

// Values of the header's path_source and trunc bytes (enum path_source
// and open_event_flags in bpf/opensnoop.h).
const (
	pathFile = uint8(opensnoopPathSourcePATH_FILE)
	pathDir  = uint8(opensnoopPathSourcePATH_DIR)
	pathName = uint8(opensnoopPathSourcePATH_NAME)

	nameTruncated = uint8(opensnoopOpenEventFlagsNAME_TRUNCATED)
	pathTruncated = uint8(opensnoopOpenEventFlagsPATH_TRUNCATED)
	nameUnread    = uint8(opensnoopOpenEventFlagsNAME_UNREAD)
)

// decode fills t.ev from a record without allocating.
func (t *Tracer) decode(raw []byte) error {
	if len(raw) < headerSize {
		return fmt.Errorf("short opensnoop record: %d bytes", len(raw))
	}
	h := (*opensnoopOpenEvent)(unsafe.Pointer(&raw[0]))
	nameEnd := headerSize + int(h.NameLen)
	pathEnd := nameEnd + int(h.PathLen)
	if pathEnd > len(raw) {
		return fmt.Errorf("opensnoop record of %d bytes holds %d", len(raw), pathEnd)
	}
	e := &t.ev
	e.Time = t.clock.Time(h.BootNs)
	e.PID, e.TID, e.UID = h.Pid, h.Tid, h.Uid
	e.Comm = trace.CString(h.Comm[:])
	e.FD, e.Errno = -1, 0
	if h.Ret >= 0 {
		e.FD = h.Ret
	} else {
		e.Errno = syscall.Errno(-h.Ret)
	}
	e.Flags, e.Mode = h.Flags, h.Mode
	e.Path = raw[headerSize:nameEnd]
	e.PathTruncated = h.Trunc&nameTruncated != 0
	e.FullPathTruncated = h.Trunc&pathTruncated != 0
	e.FullPathFromName = h.PathSource == pathDir || h.PathSource == pathName
	dir := raw[nameEnd:pathEnd]
	switch h.PathSource {
	case pathFile:
		e.FullPath = dir
	case pathName:
		e.FullPath = e.Path
		e.FullPathTruncated = e.PathTruncated
	case pathDir:
		t.full = joinPath(t.full[:0], dir, e.Path)
		e.FullPath = t.full
	default:
		e.FullPath = nil
	}
	e.NameUnread = h.Trunc&nameUnread != 0
	if e.NameUnread && h.PathSource == pathFile {
		e.Path, e.PathTruncated = dir, e.FullPathTruncated
		if !t.fullPath {
			e.FullPath, e.FullPathTruncated = nil, false
		}
	}
	return nil
}

// joinPath appends dir/name, dropping a leading "./" from name.
func joinPath(dst, dir, name []byte) []byte {
	for len(name) >= 2 && name[0] == '.' && name[1] == '/' {
		name = name[2:]
	}
	dst = append(dst, dir...)
	if len(dst) == 0 || dst[len(dst)-1] != '/' {
		dst = append(dst, '/')
	}
	return append(dst, name...)
}
