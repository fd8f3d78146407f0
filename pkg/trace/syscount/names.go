package syscount

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// NamersEnv, when set in the environment, makes LoadNamed learn syscall
// names with the namers even where it can read the kernel's table: for
// tests of the fallback, and for a kernel whose table reads wrong.
const NamersEnv = "BPFKIT_SYSCALL_NAMERS"

// Named is a loaded tool whose BPF object includes
// bpf/include/syscall_names.h (syscount, serve's syscalls): its objects and
// the syscall names, read from the kernel's table or learnt by the namers;
// with namers, the detaching of each copy of syscall_name once it has filed
// its syscall's number.
type Named struct {
	*loader.Objects
	tableErr error             // why the kernel's table was not read; nil: it was
	names    *ebpf.Map         // syscall number -> event id (namers)
	byID     map[uint32]string // event id -> syscall name (namers)
	known    map[uint32]string // syscall number -> name, read or learnt
	named    *ringbuf.Reader   // the event ids filed, each once (namers)
	done     chan struct{}     // closed when detachNamers returns (namers)
	err      error             // why detachNamers stopped before Close
}

// LoadNamed loads spec with opts (loader.Load) with the name of every
// syscall: read from the kernel's own table where it can (kernelTable),
// so that nothing is attached for names. Otherwise it puts a copy of
// syscall_name on every syscalls:sys_enter_* tracepoint of this kernel and
// from then on detaches each copy, in the background, as soon as it has
// named its syscall: later calls of that syscall run neither the copy nor
// the trace event. Close detaches what is left: each copy's perf event
// waits for the kernel's grace periods, about 30 ms (12 s on the 6.18 host
// for the ~330 copies of syscalls never called).
func LoadNamed(spec *ebpf.CollectionSpec, opts loader.Options) (*Named, error) {
	// Before tracefs is read: it mounts it where nothing has.
	if err := loader.Preflight(); err != nil {
		return nil, err
	}
	byID, err := eventIDs()
	if err != nil {
		return nil, err
	}
	table, tableErr := kernelTable(spec, byID)
	if tableErr == nil {
		delete(spec.Programs, syscountProgSyscallName)
		objs, err := loader.Load(spec, opts)
		if err != nil {
			return nil, err
		}
		return &Named{Objects: objs, known: table}, nil
	}
	if err := nameSyscalls(spec, byID); err != nil {
		return nil, err
	}
	objs, err := loader.Load(spec, opts)
	if err != nil {
		return nil, err
	}
	var maps namedMaps
	if err := objs.Assign(&maps); err != nil {
		objs.Close()
		return nil, err
	}
	rd, err := ringbuf.NewReader(maps.Named)
	if err != nil {
		objs.Close()
		return nil, loader.Explain("open the ring buffer of syscalls named", err, false)
	}
	n := &Named{
		Objects: objs, tableErr: tableErr, names: maps.Names, byID: byID,
		known: map[uint32]string{}, named: rd, done: make(chan struct{}),
	}
	go n.detachNamers()
	return n, nil
}

// kernelTable reads the number and name of every syscall of the running
// kernel from the metadata its syscalls:sys_enter_* trace events point to
// (the kernel's own table, set by ftrace at boot), and checks that it names
// exactly the events tracefs lists (byID, from eventIDs). It opens one perf event on
// the first of those events, so that syscall_table, run on the same thread,
// finds the kernel's list of trace events through it, then walks that list
// one node a run. An error says why it could not (NamersEnv set, a read
// refused, a list that did not come round); syscall_table is taken out of
// spec either way.
func kernelTable(spec *ebpf.CollectionSpec, byID map[uint32]string) (map[uint32]string, error) {
	var objs struct {
		Table *ebpf.Program `ebpf:"syscall_table"`
		Entry *ebpf.Map     `ebpf:"syscall_entry"`
	}
	// Its map stays, unused, for the objects' Assign of every map.
	defer delete(spec.Programs, syscountProgSyscallTable)
	if os.Getenv(NamersEnv) != "" {
		return nil, fmt.Errorf("%s is set", NamersEnv)
	}
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, fmt.Errorf("load syscall_table: %w", err)
	}
	defer objs.Table.Close()
	defer objs.Entry.Close()

	// The perf event, syscall_table's runs and nothing else on one thread:
	// the program finds the event among the current thread's own.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	first := ^uint32(0)
	for id := range byID {
		first = min(first, id)
	}
	fd, err := unix.PerfEventOpen(&unix.PerfEventAttr{
		Type: unix.PERF_TYPE_TRACEPOINT, Config: uint64(first), Size: uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Bits: unix.PerfBitDisabled,
	}, -1, 0, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open a perf event on sys_enter_%s: %w", byID[first], err)
	}
	defer unix.Close(fd)

	var e syscountSyscountMeta
	step := func(node uint64) error {
		ret, err := objs.Table.Run(&ebpf.RunOptions{Context: []uint64{node}})
		if err != nil {
			return fmt.Errorf("run syscall_table: %w", err)
		}
		if err := objs.Entry.Lookup(uint32(0), &e); err != nil {
			return fmt.Errorf("read syscall_entry: %w", err)
		}
		if ret != 0 {
			return fmt.Errorf("syscall_table read nothing at %#x", node)
		}
		return nil
	}
	if err := step(0); err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, name := range byID {
		names[name] = true
	}
	table := map[uint32]string{}
	found := map[string]bool{}
	start := e.Next
	// Every trace event of the kernel once, and the list's head (which no
	// event holds): far fewer than a million nodes.
	for node, n := start, 0; ; n++ {
		if n == 1<<20 {
			return nil, errors.New("the kernel's list of trace events did not come round")
		}
		if err := step(node); err != nil {
			return nil, err
		}
		if e.Nr >= 0 {
			raw := trace.CString(e.Name[:])
			name, ok := strings.CutPrefix(string(raw), "sys_")
			if !ok || !names[name] {
				return nil, fmt.Errorf("the kernel's table names %q, which has no sys_enter event", raw)
			}
			found[name] = true
			// Numbers past the names map's are not counted (as with namers).
			if uint32(e.Nr) < spec.Maps[syscountMapNames].MaxEntries {
				table[uint32(e.Nr)] = name
			}
		}
		if node = e.Next; node == start {
			break
		}
	}
	if len(found) != len(names) {
		return nil, fmt.Errorf("the kernel's table names %d syscalls, tracefs lists %d sys_enter events", len(found), len(names))
	}
	return table, nil
}

// TableError is why syscall names are learnt by the namers, not read from
// the kernel's table; nil when they were read.
func (n *Named) TableError() error { return n.tableErr }

// detachNamers detaches the copy of syscall_name of each event id the
// named ring brings, until Close.
func (n *Named) detachNamers() {
	defer close(n.done)
	var rec ringbuf.Record
	for {
		if err := n.named.ReadInto(&rec); err != nil {
			if !errors.Is(err, ringbuf.ErrClosed) {
				// The copies left attached cost time, not names.
				n.err = fmt.Errorf("read the ring buffer of syscalls named: %w", err)
			}
			return
		}
		if len(rec.RawSample) >= 4 {
			n.Detach(namer(binary.NativeEndian.Uint32(rec.RawSample)))
		}
	}
}

// Close stops detaching, then detaches and frees everything.
func (n *Named) Close() error {
	if n.named == nil {
		return n.Objects.Close()
	}
	err := n.named.Close()
	<-n.done
	return errors.Join(err, n.err, n.Objects.Close())
}

// Name returns the kernel's name of syscall nr, from its table or learnt
// at its first call since LoadNamed; "syscall_N" for a number with no
// sys_enter event. Not safe for concurrent use.
func (n *Named) Name(nr uint32) string {
	if name, ok := n.known[nr]; ok {
		return name
	}
	if n.names == nil {
		return "syscall_" + strconv.FormatUint(uint64(nr), 10)
	}
	var event uint32
	if err := n.names.Lookup(nr, &event); err == nil {
		if name, ok := n.byID[event]; ok {
			n.known[nr] = name
			return name
		}
	}
	return "syscall_" + strconv.FormatUint(uint64(nr), 10)
}

// Namer returns the loaded copy of syscall_name that names syscall name
// ("getppid"), and whether it is still attached; nil if this kernel has no
// sys_enter_<name> event, or names were read from its table.
func (n *Named) Namer(name string) (*ebpf.Program, bool) {
	for id, s := range n.byID {
		if s == name {
			return n.Collection.Programs[namer(id)], n.Attached(namer(id))
		}
	}
	return nil, false
}

// namer is the name of the copy of syscall_name for event id.
func namer(id uint32) string { return fmt.Sprintf("name_%d", id) }

// eventIDs returns the syscall name of every syscalls:sys_enter_* event
// of this kernel, by event id.
func eventIDs() (map[uint32]string, error) {
	dir := filepath.Join(loader.TracefsPath, "events", "syscalls")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrPermission) {
		return nil, loader.ErrTracefsAccess
	}
	if err != nil {
		return nil, fmt.Errorf("list syscall events: %w", err)
	}
	byID := map[uint32]string{}
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), "sys_enter_")
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "id"))
		if err != nil {
			return nil, fmt.Errorf("read %s's id: %w", e.Name(), err)
		}
		id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s's id: %w", e.Name(), err)
		}
		byID[uint32(id)] = name
	}
	return byID, nil
}

// nameSyscalls replaces syscall_name in spec with one copy per
// syscalls:sys_enter_* tracepoint of this kernel (byID, from eventIDs),
// each with the event's id in place of the placeholder, and sizes the
// named ring to hold a record of each.
func nameSyscalls(spec *ebpf.CollectionSpec, byID map[uint32]string) error {
	var placeholder uint32
	if err := spec.Variables[syscountVarEventPlaceholder].Get(&placeholder); err != nil {
		return err
	}
	proto := spec.Programs[syscountProgSyscallName]
	delete(spec.Programs, syscountProgSyscallName)
	for id, name := range byID {
		p := proto.Copy()
		p.Name = namer(id)
		p.SectionName = "tracepoint/syscalls/sys_enter_" + name
		patched := 0
		for i := range p.Instructions {
			if ins := &p.Instructions[i]; ins.OpCode.ALUOp() == asm.Mov && ins.Constant == int64(placeholder) {
				ins.Constant = int64(id)
				patched++
			}
		}
		if patched != 1 {
			return fmt.Errorf("syscall_name has %d placeholders, want 1", patched)
		}
		spec.Programs[p.Name] = p
	}
	var maps namedMapSpecs
	if err := spec.Assign(&maps); err != nil {
		return err
	}
	maps.Named.MaxEntries = namedRingSize(len(byID))
	return nil
}

// namedMapSpecs and namedMaps are the maps of
// bpf/include/syscall_names.h, in every object that includes it.
type namedMapSpecs struct {
	Named *ebpf.MapSpec `ebpf:"named"` // ring of the event ids filed
	Names *ebpf.MapSpec `ebpf:"names"` // syscall number -> event id
}

type namedMaps struct {
	Named *ebpf.Map `ebpf:"named"`
	Names *ebpf.Map `ebpf:"names"`
}

// namedRingSize is a ring buffer size that holds n records of an event id
// (an 8-byte header and 4 bytes padded to 8) unread: a power of two, at
// least a page.
func namedRingSize(n int) uint32 {
	size := max(uint(os.Getpagesize()), uint(16*n))
	return 1 << bits.Len(size-1)
}
