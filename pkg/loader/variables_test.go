package loader_test

import (
	"testing"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
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
