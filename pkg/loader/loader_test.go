package loader

import (
	"errors"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func TestHookOf(t *testing.T) {
	for section, want := range map[string]Hook{
		"tracepoint/syscalls/sys_enter_openat": {Kind: HookTracepoint, Group: "syscalls", Name: "sys_enter_openat"},
		"tp/sched/sched_switch":                {Kind: HookTracepoint, Group: "sched", Name: "sched_switch"},
		"tp_btf/sched_switch":                  {Kind: HookBTFTracepoint, Name: "sched_switch"},
		"raw_tracepoint/sched_switch":          {Kind: HookRawTracepoint, Name: "sched_switch"},
		"raw_tp/sched_wakeup":                  {Kind: HookRawTracepoint, Name: "sched_wakeup"},
		"raw_tp":                               {Kind: HookRun, Name: "run"},
		"xdp":                                  {Kind: HookXDP, Name: "xdp"},
	} {
		got, err := HookOf(&ebpf.ProgramSpec{Name: "p", SectionName: section})
		if err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", section, got, err, want)
		}
	}
	for _, bad := range []string{"tracepoint/nogroup", "kprobe/do_sys_open", "tc", ""} {
		if _, err := HookOf(&ebpf.ProgramSpec{Name: "p", SectionName: bad}); err == nil {
			t.Errorf("section %q parsed", bad)
		}
	}
}

func TestValidRingSize(t *testing.T) {
	for _, ok := range []int{4096, 1 << 20, DefaultRingSize, 1 << 30} {
		if err := ValidRingSize(ok); err != nil {
			t.Errorf("%d: %v", ok, err)
		}
	}
	for _, bad := range []int{0, 1000, 4095, 3 << 20, 1 << 31} {
		if err := ValidRingSize(bad); err == nil {
			t.Errorf("%d accepted", bad)
		}
	}
	if w := wakeupBytes(4096); w != 512 {
		t.Errorf("wakeup for a 4 KiB ring: %d", w)
	}
	if w := wakeupBytes(DefaultRingSize); w != 256<<10 {
		t.Errorf("wakeup for the default ring: %d", w)
	}
}

func TestTaskFilterVariables(t *testing.T) {
	uid := uint32(1000)
	vars, err := TaskFilter{PID: 1, TID: 2, UID: &uid, Comm: "nginx"}.Variables()
	if err != nil {
		t.Fatal(err)
	}
	var comm [16]byte
	copy(comm[:], "nginx")
	if vars["filter_pid"] != uint32(1) || vars["filter_tid"] != uint32(2) || vars["filter_uid_on"] != true ||
		vars["filter_uid"] != uint32(1000) || vars["filter_comm"] != comm {
		t.Errorf("variables %v", vars)
	}
	if _, err := (TaskFilter{Comm: "sixteen-bytes-xx"}).Variables(); err == nil || !strings.Contains(err.Error(), "15 bytes") {
		t.Errorf("long comm: %v", err)
	}
	if _, err := (TaskFilter{Cgroup: "/no/such/cgroup"}).Variables(); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing cgroup: %v", err)
	}
	if _, err := (TaskFilter{Cgroup: "/proc"}).Variables(); err == nil || !strings.Contains(err.Error(), "cgroup v2") {
		t.Errorf("not a cgroup: %v", err)
	}
}

// spec returns a collection of trivial tracepoint programs, one per section.
func spec(sections map[string]asm.Instructions) *ebpf.CollectionSpec {
	cs := &ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{}, Maps: map[string]*ebpf.MapSpec{}}
	for name, insns := range sections {
		prog, section, _ := strings.Cut(name, "@")
		cs.Programs[prog] = &ebpf.ProgramSpec{Name: prog, Type: ebpf.TracePoint, SectionName: section,
			License: "GPL", Instructions: insns}
	}
	return cs
}

var ret0 = asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}

func TestLoadDropsMissingHooks(t *testing.T) {
	testkit.RequireRoot(t)
	o, err := Load(spec(map[string]asm.Instructions{
		"present@tracepoint/syscalls/sys_enter_getpid":        ret0,
		"absent@tracepoint/syscalls/sys_enter_no_such_call":   ret0,
		"absent2@tracepoint/no_such_group/no_such_tracepoint": ret0,
	}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	absent := o.Dropped["absent@tracepoint/syscalls/sys_enter_no_such_call"]
	if len(o.Dropped) != 2 || absent == nil || o.Dropped["absent2@tracepoint/no_such_group/no_such_tracepoint"] == nil {
		t.Errorf("dropped %v", o.Dropped)
	}
	if absent == nil || !strings.Contains(absent.Error(), "syscalls:sys_enter_no_such_call") {
		t.Errorf("reason %v", absent)
	}
	if len(o.links) != 1 {
		t.Errorf("%d links, want 1", len(o.links))
	}

	_, err = Load(spec(map[string]asm.Instructions{"absent@tracepoint/syscalls/sys_enter_no_such_call": ret0}), Options{})
	if err == nil || !strings.Contains(err.Error(), "none of this tool's hooks exist") {
		t.Errorf("all hooks missing: %v", err)
	}
}

func TestAlsoAttach(t *testing.T) {
	testkit.RequireRoot(t)
	o, err := Load(spec(map[string]asm.Instructions{"p@tracepoint/syscalls/sys_enter_getpid": ret0}), Options{
		AlsoAttach: map[string][]string{"p": {"tracepoint/syscalls/sys_enter_getppid", "tracepoint/syscalls/sys_enter_no_such_call"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if len(o.links) != 2 || len(o.Dropped) != 1 || o.Dropped["p@tracepoint/syscalls/sys_enter_no_such_call"] == nil {
		t.Errorf("%d links, dropped %v", len(o.links), o.Dropped)
	}
	_, err = Load(spec(map[string]asm.Instructions{"p@tracepoint/syscalls/sys_enter_getpid": ret0}), Options{
		AlsoAttach: map[string][]string{"q": {"tracepoint/syscalls/sys_enter_getppid"}},
	})
	if err == nil || !strings.Contains(err.Error(), `no program "q"`) {
		t.Errorf("unknown program: %v", err)
	}
}

func TestVerifierRejectionIsOneLine(t *testing.T) {
	testkit.RequireRoot(t)
	bad := asm.Instructions{asm.Mov.Reg(asm.R0, asm.R2), asm.Return()} // reads an unset register
	_, err := Load(spec(map[string]asm.Instructions{"bad@tracepoint/syscalls/sys_enter_getpid": bad}), Options{})
	if err == nil {
		t.Fatal("loaded a program that reads an uninitialised register")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "verifier rejected") ||
		!strings.Contains(msg, "R2 !read_ok") || !strings.Contains(msg, "--debug") {
		t.Errorf("error %q", msg)
	}
	_, err = Load(spec(map[string]asm.Instructions{"bad@tracepoint/syscalls/sys_enter_getpid": bad}), Options{Debug: true})
	var ve *ebpf.VerifierError
	if err == nil || !errors.As(err, &ve) && !strings.Contains(err.Error(), "\n") {
		t.Errorf("debug error %q carries no log", err)
	}
}

// TestLoadRejectsUnknownVariables: a variable the object does not have is
// an error (setting them is TestLoadSetsVariables, in variables_test.go).
func TestLoadRejectsUnknownVariables(t *testing.T) {
	testkit.RequireRoot(t)
	_, err := Load(spec(map[string]asm.Instructions{"p@tracepoint/syscalls/sys_enter_getpid": ret0}),
		Options{Variables: map[string]any{"no_such_knob": uint32(1)}})
	if err == nil || !strings.Contains(err.Error(), `no variable "no_such_knob"`) {
		t.Errorf("unknown variable: %v", err)
	}
}
