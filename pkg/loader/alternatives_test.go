package loader

import (
	"testing"

	"github.com/cilium/ebpf"
)

// TestAlternatives: of each group the first program whose hook exists is
// kept and the rest removed; a group with no hook at all is reported.
func TestAlternatives(t *testing.T) {
	spec := &ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{
		"a_btf":   {Name: "a_btf", SectionName: "tp_btf/bpfkit_no_such_tracepoint"},
		"a_raw":   {Name: "a_raw", SectionName: "raw_tracepoint/sched_switch"},
		"b_btf":   {Name: "b_btf", SectionName: "tp_btf/sched_switch"},
		"b_raw":   {Name: "b_raw", SectionName: "raw_tracepoint/sched_switch"},
		"c_btf":   {Name: "c_btf", SectionName: "tp_btf/bpfkit_no_such_tracepoint"},
		"c_raw":   {Name: "c_raw", SectionName: "raw_tracepoint/bpfkit_no_such_tracepoint"},
		"plain":   {Name: "plain", SectionName: "raw_tracepoint/sched_wakeup"},
		"missing": {Name: "missing", SectionName: "raw_tracepoint/bpfkit_no_such_tracepoint"},
	}}
	hooks, dropped, err := pruneMissingHooks(spec, Options{Alternatives: [][]string{{"a_btf", "a_raw"}, {"b_btf", "b_raw"}, {"c_btf", "c_raw"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a_raw", "b_btf", "plain"} {
		if _, ok := hooks[name]; !ok {
			t.Errorf("%s not kept", name)
		}
	}
	if len(hooks) != 3 || len(spec.Programs) != 3 {
		t.Errorf("kept %v, spec has %d programs", hooks, len(spec.Programs))
	}
	if len(dropped) != 2 || dropped["c_btf"] == nil || dropped["missing@raw_tracepoint/bpfkit_no_such_tracepoint"] == nil {
		t.Errorf("dropped %v", dropped)
	}
	if _, _, err := pruneMissingHooks(spec, Options{Alternatives: [][]string{{"nope"}}}); err == nil {
		t.Error("an unknown alternative is not an error")
	}
}
