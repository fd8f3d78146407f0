package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
)

// NoBTFTracepointsEnv, when set in the environment, makes every BTF
// tracepoint (tp_btf) count as missing, so that tools fall back to their
// raw tracepoint alternatives (Options.Alternatives): for tests of the
// fallback, and for kernels whose BTF tracepoints misbehave.
const NoBTFTracepointsEnv = "BPFKIT_NO_TP_BTF"

// HookKind is where in the kernel a program runs.
type HookKind int

const (
	HookTracepoint    HookKind = iota + 1 // tracepoint/GROUP/NAME
	HookBTFTracepoint                     // tp_btf/NAME
	HookRawTracepoint                     // raw_tracepoint/NAME
	// HookXDP is a network interface's XDP hook (section "xdp"). Load does
	// not attach it: pkg/xdp attaches to the interface it is given.
	HookXDP
	// HookTailCall is a tracepoint program that Load does not attach:
	// other programs reach it with bpf_tail_call through a program array
	// initialised in C. Section tracepoint/tail_call.
	HookTailCall
	// HookUprobe is a uprobe or uretprobe (section "uprobe", "uretprobe").
	// Load does not attach it: the tool attaches it to the file, offset
	// and process it finds at run time.
	HookUprobe
	// HookRun is a raw tracepoint program with no tracepoint (section
	// "raw_tp"): never attached, the tool runs it (BPF_PROG_TEST_RUN, 5.10+)
	// to read the kernel on demand.
	HookRun
)

// Hook is the attach point a program's ELF section names.
type Hook struct {
	Kind  HookKind
	Group string // tracepoint group, e.g. "syscalls"
	Name  string // tracepoint name, e.g. "sys_enter_openat"
}

func (h Hook) String() string {
	switch h.Kind {
	case HookTracepoint:
		return "tracepoint " + h.Group + ":" + h.Name
	case HookBTFTracepoint:
		return "BTF tracepoint " + h.Name
	case HookRawTracepoint:
		return "raw tracepoint " + h.Name
	case HookXDP:
		return "XDP"
	case HookTailCall:
		return "tail call"
	case HookUprobe:
		return h.Name
	case HookRun:
		return "run by the tool"
	}
	return "unknown hook"
}

// HookOf parses a program's section name.
func HookOf(p *ebpf.ProgramSpec) (Hook, error) {
	kind, rest, _ := strings.Cut(p.SectionName, "/")
	switch kind {
	case "tracepoint", "tp":
		if rest == "tail_call" {
			return Hook{Kind: HookTailCall, Name: "tail_call"}, nil
		}
		group, name, ok := strings.Cut(rest, "/")
		if !ok {
			break
		}
		return Hook{Kind: HookTracepoint, Group: group, Name: name}, nil
	case "tp_btf":
		return Hook{Kind: HookBTFTracepoint, Name: rest}, nil
	case "raw_tracepoint", "raw_tp":
		if rest == "" {
			return Hook{Kind: HookRun, Name: "run"}, nil
		}
		return Hook{Kind: HookRawTracepoint, Name: rest}, nil
	case "xdp":
		return Hook{Kind: HookXDP, Name: "xdp"}, nil
	case "uprobe", "uretprobe":
		return Hook{Kind: HookUprobe, Name: kind}, nil
	}
	return Hook{}, fmt.Errorf("program %s: unsupported section %q", p.Name, p.SectionName)
}

// Attachable reports whether the program is attached somewhere at all: not
// a tail call target, nor a program the tool runs (HookRun).
func (h Hook) Attachable() bool { return h.Kind != HookTailCall && h.Kind != HookRun }

// Available reports whether this kernel has the hook, and if not, why.
// Tracepoint hooks need tracefs mounted (EnsureTracefs).
func (h Hook) Available() error {
	switch h.Kind {
	case HookTracepoint:
		dir := filepath.Join(tracefsRoot(), "events", h.Group, h.Name)
		if _, err := os.Stat(dir); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("this kernel has no tracepoint %s:%s", h.Group, h.Name)
			}
			if errors.Is(err, os.ErrPermission) {
				return ErrTracefsAccess
			}
			return fmt.Errorf("look up tracepoint %s:%s: %w", h.Group, h.Name, err)
		}
		return nil
	case HookBTFTracepoint, HookRawTracepoint:
		if h.Kind == HookBTFTracepoint && os.Getenv(NoBTFTracepointsEnv) != "" {
			return fmt.Errorf("BTF tracepoint %s: turned off by %s", h.Name, NoBTFTracepointsEnv)
		}
		spec, err := KernelBTF()
		if err != nil {
			return fmt.Errorf("%s: %w", h, ErrNoBTF)
		}
		var fn *btf.Typedef
		if err := spec.TypeByName("btf_trace_"+h.Name, &fn); err != nil {
			return fmt.Errorf("this kernel has no raw tracepoint %s", h.Name)
		}
		return nil
	case HookXDP:
		if err := features.HaveProgramType(ebpf.XDP); err != nil {
			return fmt.Errorf("this kernel has no XDP: %w", err)
		}
		return nil
	case HookTailCall, HookRun:
		return nil
	case HookUprobe:
		// The uprobe PMU (4.17+), else tracefs's uprobe_events.
		if _, err := os.Stat("/sys/bus/event_source/devices/uprobe"); err == nil {
			return nil
		}
		if _, err := os.Stat(filepath.Join(tracefsRoot(), "uprobe_events")); err != nil {
			return fmt.Errorf("this kernel has no uprobes (CONFIG_UPROBE_EVENTS)")
		}
		return nil
	}
	return fmt.Errorf("unknown hook kind %d", h.Kind)
}

// attach attaches prog at h.
func (h Hook) attach(prog *ebpf.Program) (link.Link, error) {
	switch h.Kind {
	case HookTracepoint:
		l, err := link.Tracepoint(h.Group, h.Name, prog, nil)
		if err != nil {
			return nil, PerfEventError(err)
		}
		return l, nil
	case HookBTFTracepoint:
		return link.AttachTracing(link.TracingOptions{Program: prog})
	case HookRawTracepoint:
		return link.AttachRawTracepoint(link.RawTracepointOptions{Name: h.Name, Program: prog})
	case HookXDP:
		return nil, fmt.Errorf("XDP programs attach to an interface: use pkg/xdp")
	case HookTailCall:
		return nil, fmt.Errorf("tail call targets are not attached")
	case HookUprobe:
		return nil, fmt.Errorf("uprobes attach to a file the tool finds: use link.OpenExecutable")
	case HookRun:
		return nil, fmt.Errorf("programs the tool runs are not attached")
	}
	return nil, fmt.Errorf("unknown hook kind %d", h.Kind)
}
