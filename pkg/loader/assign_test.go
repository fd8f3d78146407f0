package loader_test

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/opensnoop"
)

// TestAssign fills a struct shaped like bpf2go's from a loaded object
// (opensnoop's) and checks each field is the collection's own object,
// still owned by it, and that a tag naming nothing loaded is an error.
func TestAssign(t *testing.T) {
	testkit.RequireRoot(t)
	spec, err := opensnoop.Tool.Spec()
	if err != nil {
		t.Fatal(err)
	}
	o, err := loader.Load(spec, loader.Options{Variables: map[string]any{"only_failed": true}})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	type maps struct {
		Lost *ebpf.Map `ebpf:"lost"`
	}
	var got struct {
		maps
		ExitOpen   *ebpf.Program  `ebpf:"exit_open"`
		OnlyFailed *ebpf.Variable `ebpf:"only_failed"`
	}
	if err := o.Assign(&got); err != nil {
		t.Fatal(err)
	}
	if got.Lost != o.Collection.Maps["lost"] || got.ExitOpen != o.Collection.Programs["exit_open"] ||
		got.OnlyFailed != o.Collection.Variables["only_failed"] || got.Lost == nil || got.ExitOpen == nil {
		t.Errorf("assigned %+v, want the collection's lost, exit_open and only_failed", got)
	}
	var onlyFailed bool
	if err := got.OnlyFailed.Get(&onlyFailed); err != nil || !onlyFailed {
		t.Errorf("only_failed through the assigned variable: %v, %v; want true", onlyFailed, err)
	}
	if h := o.Health(); h.Lost != 0 {
		t.Errorf("lost %d after Assign, want 0 (the map still read through the collection)", h.Lost)
	}
	var missing struct {
		Nope *ebpf.Map `ebpf:"nope"`
	}
	if err := o.Assign(&missing); err == nil || !strings.Contains(err.Error(), `Map "nope" is not loaded`) {
		t.Errorf("assign a map that is not loaded: %v", err)
	}
	if err := o.Assign(got); err == nil {
		t.Error("assign to a struct value, not a pointer: no error")
	}
}
