package syscount

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/bpfkit/bpfkit/pkg/loader"
)

// Named is a loaded tool whose BPF object includes
// bpf/include/syscall_names.h (syscount, serve's syscalls): its objects,
// the syscall names learnt, and the detaching of each copy of syscall_name
// once it has filed its syscall's number.
type Named struct {
	*loader.Objects
	names *ebpf.Map         // syscall number -> event id
	byID  map[uint32]string // event id -> syscall name
	known map[uint32]string // syscall number -> name, as learnt
	named *ringbuf.Reader   // the event ids filed, each once
	done  chan struct{}     // closed when detachNamers returns
	err   error             // why detachNamers stopped before Close
}

// LoadNamed puts a copy of syscall_name on every syscalls:sys_enter_*
// tracepoint of this kernel, loads spec with opts (loader.Load), and from
// then on detaches each copy, in the background, as soon as it has named
// its syscall: later calls of that syscall run neither the copy nor the
// trace event. Close detaches what is left.
func LoadNamed(spec *ebpf.CollectionSpec, opts loader.Options) (*Named, error) {
	byID, err := nameSyscalls(spec)
	if err != nil {
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
		Objects: objs, names: maps.Names, byID: byID, known: map[uint32]string{},
		named: rd, done: make(chan struct{}),
	}
	go n.detachNamers()
	return n, nil
}

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
	err := n.named.Close()
	<-n.done
	return errors.Join(err, n.err, n.Objects.Close())
}

// Name returns the kernel's name of syscall nr, learnt at its first call
// since LoadNamed; "syscall_N" for a number with no sys_enter event. Not
// safe for concurrent use.
func (n *Named) Name(nr uint32) string {
	if name, ok := n.known[nr]; ok {
		return name
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
// sys_enter_<name> event.
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
// syscalls:sys_enter_* tracepoint of this kernel, each with the event's id
// in place of the placeholder, sizes the named ring to hold a record of
// each, and returns the syscall name of each id (eventIDs).
func nameSyscalls(spec *ebpf.CollectionSpec) (map[uint32]string, error) {
	var placeholder uint32
	if err := spec.Variables[syscountVarEventPlaceholder].Get(&placeholder); err != nil {
		return nil, err
	}
	byID, err := eventIDs()
	if err != nil {
		return nil, err
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
			return nil, fmt.Errorf("syscall_name has %d placeholders, want 1", patched)
		}
		spec.Programs[p.Name] = p
	}
	var maps namedMapSpecs
	if err := spec.Assign(&maps); err != nil {
		return nil, err
	}
	maps.Named.MaxEntries = namedRingSize(len(byID))
	return byID, nil
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
