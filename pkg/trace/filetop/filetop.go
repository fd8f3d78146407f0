// Package filetop counts reads and writes per thread (or process) and file,
// in the kernel, from the syscalls tracepoints of the read and write family;
// every interval user space takes the counts and clears them, like top.
//
// A call counts as one read or write when it returns >= 0 (a read at end of
// file, returning 0, counts); its bytes are what it returned. Failed calls
// are not counted. Nothing crosses to user space per call.
package filetop

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// Tool describes filetop to its command, to `bpfkit check` and to serve.
var Tool = tool.Descriptor{
	Name:    "filetop",
	Kind:    tool.Sampler,
	Summary: "Show the files read and written most, per thread, like top",
	Spec:    loadFiletop,
	Hooks:   loader.Options{AlsoAttach: AlsoAttach},
}

// DefaultMapSize is how many (thread, file) pairs one interval can hold.
const DefaultMapSize = 10240

// MaxMapSize is the most (thread, file) pairs Config.MapSize may ask for.
const MaxMapSize = 1 << 24

// Config selects what is counted. Every filter runs in the kernel.
type Config struct {
	Filter     loader.TaskFilter
	All        bool // sockets, pipes and other non-regular files too
	PerProcess bool // one row per process and file instead of per thread
	MapSize    int  // (thread, file) pairs per interval; 0 for DefaultMapSize
	Debug      bool // full verifier log on rejection
}

// Type is the kind of file, from its inode.
type Type byte

const (
	Regular = Type(filetopFileTypeFILE_REGULAR) // 'R'
	Socket  = Type(filetopFileTypeFILE_SOCKET)  // 'S'
	Pipe    = Type(filetopFileTypeFILE_PIPE)    // 'P'
	Other   = Type(filetopFileTypeFILE_OTHER)   // 'O': devices, directories, anonymous inodes...
)

// Row is what one thread (or process) did to one file in an interval.
type Row struct {
	Time       time.Time // end of the interval
	PID        uint32
	TID        uint32 // 0 with Config.PerProcess
	Comm       string
	Reads      uint64
	Writes     uint64
	ReadBytes  uint64
	WriteBytes uint64
	Type       Type
	// Path is the absolute path, resolved in the kernel; sockets and
	// pipes are named like /proc/PID/fd shows them ("socket:[INODE]").
	Path          string
	PathTruncated bool // longer than 4095 bytes or 256 components deep
	Deleted       bool // the file was unlinked
	Dev           uint32
	Ino           uint64
}

// Snapshot is one interval's counts.
type Snapshot struct {
	Time time.Time
	Rows []Row
	// Lost is Tracer.Health().Lost when the snapshot was taken.
	Lost uint64
}

// AlsoAttach puts filetop's three programs on every call it counts: one
// on all entries, one on the exits of reads, one on the exits of writes.
var AlsoAttach = map[string][]string{
	"enter_fd_call": syscalls("enter", "readv", "pread64", "preadv", "preadv2",
		"write", "writev", "pwrite64", "pwritev", "pwritev2"),
	"exit_read_call":  syscalls("exit", "readv", "pread64", "preadv", "preadv2"),
	"exit_write_call": syscalls("exit", "writev", "pwrite64", "pwritev", "pwritev2"),
}

func syscalls(dir string, names ...string) []string {
	var sections []string
	for _, n := range names {
		sections = append(sections, "tracepoint/syscalls/sys_"+dir+"_"+n)
	}
	return sections
}

// switchGrace is how long Drain waits after switching the kernel to the
// other counter map before it takes the full one: far longer than the few
// hundred nanoseconds a program that read the old side still runs.
const switchGrace = 2 * time.Millisecond

// Tracer is attached from New until Close.
type Tracer struct {
	objs  *loader.Objects
	maps  filetopMaps
	stats [2]*ebpf.Map // maps.Stats0 and Stats1, double-buffered: the kernel adds to stats[side]
	side  uint32
	// names holds paths read from the kernel, by file, until a row
	// that needs them has come (the kernel hands each path over once per
	// interval in which the file is used).
	names map[filetopFileId]name
}

type name struct {
	path      string
	truncated bool
	deleted   bool
	used      bool
}

// New loads filetop's programs with cfg and attaches them.
func New(cfg Config) (*Tracer, error) {
	spec, err := loadFiletop()
	if err != nil {
		return nil, err
	}
	vars, err := cfg.Filter.Variables()
	if err != nil {
		return nil, err
	}
	size := cfg.MapSize
	if size == 0 {
		size = DefaultMapSize
	}
	if size < 1 || size > MaxMapSize {
		return nil, fmt.Errorf("map size %d: give a number of entries from 1 to %d", size, MaxMapSize)
	}
	var specs struct {
		filetopMapSpecs
		filetopVariableSpecs
	}
	if err := spec.Assign(&specs); err != nil {
		return nil, err
	}
	if err := errors.Join(specs.AllFiles.Set(cfg.All), specs.PerProcess.Set(cfg.PerProcess)); err != nil {
		return nil, fmt.Errorf("configure filetop: %w", err)
	}
	specs.Stats0.MaxEntries = uint32(size)
	specs.Stats1.MaxEntries = uint32(size)
	specs.Paths.MaxEntries = uint32(size)
	objs, err := Tool.Load(spec, loader.Options{
		Variables: vars,
		RingSize:  4096, // filetop sends no events: the smallest ring
		Debug:     cfg.Debug,
	})
	if err != nil {
		return nil, err
	}
	t := &Tracer{objs: objs, names: map[filetopFileId]name{}}
	if err := objs.Assign(&t.maps); err != nil {
		objs.Close()
		return nil, err
	}
	t.stats = [2]*ebpf.Map{t.maps.Stats0, t.maps.Stats1}
	return t, nil
}

// Dropped lists the hooks this kernel lacks (for example preadv2 before 4.6).
func (t *Tracer) Dropped() map[string]error { return t.objs.Dropped }

// Health reports the calls not counted because the map was full (or,
// rarer, more than 65536 live threads made calls), the runs the kernel
// skipped and the hooks this kernel lacks.
func (t *Tracer) Health() loader.Health {
	h := t.objs.Health()
	h.Full = fmt.Sprintf("calls not counted: the map (%d entries) was full (raise --map-size)", t.stats[0].MaxEntries())
	return h
}

// Close detaches and frees everything.
func (t *Tracer) Close() error { return t.objs.Close() }

// Drain returns what was counted since the last Drain (or since New) and
// starts a new interval. Rows are in no particular order: see Sort.
func (t *Tracer) Drain() (Snapshot, error) {
	s := Snapshot{Time: time.Now()}
	// Switch the kernel to the other map, let the programs that still
	// use this one finish, then take it.
	full := t.stats[t.side]
	if err := t.maps.Side.Update(uint32(0), t.side^1, ebpf.UpdateAny); err != nil {
		return s, fmt.Errorf("switch counter maps: %w", err)
	}
	t.side ^= 1
	time.Sleep(switchGrace)
	err := loader.Drain(full, func(k *filetopFileKey, v *filetopFileStat) {
		s.Rows = append(s.Rows, Row{
			Time:       s.Time,
			PID:        k.Pid,
			TID:        k.Tid,
			Comm:       string(trace.CString(v.Comm[:])),
			Reads:      v.Reads,
			Writes:     v.Writes,
			ReadBytes:  v.ReadBytes,
			WriteBytes: v.WriteBytes,
			Type:       Type(v.Type),
			Dev:        k.File.Dev,
			Ino:        k.File.Ino,
		})
	})
	if err != nil {
		return s, err
	}
	// Paths after counts: a path the kernel adds meanwhile waits here
	// for the row of the next interval.
	err = loader.Drain(t.maps.Paths, func(k *filetopFileId, v *filetopFilePath) {
		t.names[*k] = decodePath(v)
	})
	if err != nil {
		return s, err
	}
	for i := range s.Rows {
		t.name(&s.Rows[i])
	}
	// Keep only what this interval used, and what arrived for the next.
	for k, n := range t.names {
		if !n.used {
			delete(t.names, k)
			continue
		}
		n.used = false
		t.names[k] = n
	}
	s.Lost = t.objs.Lost()
	return s, nil
}

// name fills r's path from the names the kernel handed over.
func (t *Tracer) name(r *Row) {
	id := filetopFileId{Ino: r.Ino, Dev: r.Dev}
	switch r.Type {
	case Socket:
		r.Path = fmt.Sprintf("socket:[%d]", r.Ino)
		return
	case Pipe:
		r.Path = fmt.Sprintf("pipe:[%d]", r.Ino)
		return
	}
	n, ok := t.names[id]
	if !ok {
		// Resolved while the maps were being read: still in the kernel.
		var v filetopFilePath
		if err := t.maps.Paths.Lookup(&id, &v); err != nil {
			r.Path = "?"
			return
		}
		n = decodePath(&v)
	}
	r.Path, r.PathTruncated, r.Deleted = n.path, n.truncated, n.deleted
	n.used = true
	t.names[id] = n
}

// Values of file_path's flags byte (enum file_path_flags in bpf/filetop.h).
const (
	pathTruncated = uint8(filetopFilePathFlagsFILE_PATH_TRUNCATED)
	fileDeleted   = uint8(filetopFilePathFlagsFILE_DELETED)
)

func decodePath(v *filetopFilePath) name {
	n := min(int(v.Len), len(v.Path))
	return name{
		path:      string(trace.CString(v.Path[:n])),
		truncated: v.Flags&pathTruncated != 0,
		deleted:   v.Flags&fileDeleted != 0,
		used:      true,
	}
}
