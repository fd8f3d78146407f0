package loader_test

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/bio"
	"github.com/bpfkit/bpfkit/pkg/trace/opensnoop"
)

// TestLoadSetsVariables loads a real object (opensnoop's) with variables
// set and reads them back from the kernel's copy of its .rodata map.
func TestLoadSetsVariables(t *testing.T) {
	testkit.RequireRoot(t)
	spec, err := opensnoop.Tool.Spec()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{
		"filter_pid":  {0x92, 0x10, 0, 0}, // 4242, little-endian
		"only_failed": {1},
	}
	vs := map[string]*struct{ off, size uint32 }{}
	for name := range want {
		v, ok := spec.Variables[name]
		if !ok {
			t.Fatalf("opensnoop has no variable %s", name)
		}
		if v.SectionName != ".rodata" {
			t.Fatalf("%s is in %s, not .rodata", name, v.SectionName)
		}
		vs[name] = &struct{ off, size uint32 }{v.Offset, v.Size()}
	}
	o, err := loader.Load(spec, loader.Options{Variables: map[string]any{"filter_pid": uint32(4242), "only_failed": true}})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	rodata, ok := o.Collection.Maps[".rodata"]
	if !ok {
		t.Fatal("no .rodata map loaded")
	}
	value := make([]byte, rodata.ValueSize())
	if err := rodata.Lookup(uint32(0), &value); err != nil {
		t.Fatalf("read .rodata from the kernel: %v", err)
	}
	for name, w := range want {
		v := vs[name]
		if got := value[v.off : v.off+v.size]; string(got) != string(w) {
			t.Errorf("%s in the kernel: % x, want % x", name, got, w)
		}
	}
	// A variable left alone keeps the object's default (false).
	fp := spec.Variables["want_full_path"]
	if got := value[fp.Offset]; got != 0 {
		t.Errorf("want_full_path in the kernel: %d, want 0 (not set)", got)
	}
}

// TestLoadSetsAttached: an object with the attached_ns variable (bio's)
// finds in it, read back from the kernel's copy of its .data map, the
// CLOCK_MONOTONIC time at which Load had attached its programs.
func TestLoadSetsAttached(t *testing.T) {
	testkit.RequireRoot(t)
	spec, err := bio.Biosnoop.Spec()
	if err != nil {
		t.Fatal(err)
	}
	v, ok := spec.Variables[loader.AttachedVar]
	if !ok || v.SectionName != ".data" {
		t.Fatalf("bio has no writable %s: %+v", loader.AttachedVar, v)
	}
	var initial uint64
	if err := v.Get(&initial); err != nil || initial != ^uint64(0) {
		t.Fatalf("%s before load: %#x, %v; want all ones (every request from before)", loader.AttachedVar, initial, err)
	}
	monotonic := func() uint64 {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			t.Fatal(err)
		}
		return uint64(ts.Nano())
	}
	before := monotonic()
	o, err := loader.Load(spec, loader.Options{Alternatives: bio.Alternatives})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	after := monotonic()
	value := make([]byte, o.Collection.Maps[".data"].ValueSize())
	if err := o.Collection.Maps[".data"].Lookup(uint32(0), &value); err != nil {
		t.Fatalf("read .data from the kernel: %v", err)
	}
	got := binary.NativeEndian.Uint64(value[v.Offset:])
	if got < before || got > after {
		t.Errorf("%s in the kernel: %d, want between %d and %d (Load's start and end)", loader.AttachedVar, got, before, after)
	}
}
