package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/cswitch"
	"github.com/bpfkit/bpfkit/pkg/trace/execsnoop"
	"github.com/bpfkit/bpfkit/pkg/trace/filetop"
	"github.com/bpfkit/bpfkit/pkg/trace/offcputime"
	"github.com/bpfkit/bpfkit/pkg/trace/opensnoop"
	"github.com/bpfkit/bpfkit/pkg/trace/runqlat"
	"github.com/bpfkit/bpfkit/pkg/trace/schedrecord"
	"github.com/bpfkit/bpfkit/pkg/xdp"
)

// tools lists every tracer with the BPF objects it loads, for check.
var tools = []struct {
	name  string
	spec  func() (*ebpf.CollectionSpec, error)
	hooks loader.Options // how the tool attaches: AlsoAttach, Alternatives
}{
	{"opensnoop", opensnoop.Spec, loader.Options{AlsoAttach: opensnoop.AlsoAttach}},
	{"execsnoop", execsnoop.ExecSpec, loader.Options{}},
	{"exitsnoop", execsnoop.ExitSpec, loader.Options{}},
	{"filetop", filetop.Spec, loader.Options{AlsoAttach: filetop.AlsoAttach}},
	{"cswitch", cswitch.Spec, loader.Options{}},
	{"runqlat", runqlat.Spec, loader.Options{}},
	{"offcputime", offcputime.Spec, loader.Options{}},
	{"sched record", schedrecord.Spec, loader.Options{}},
	{"xdp", xdp.Spec, loader.Options{}},
}

func newCheckCmd(_ *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Show what this kernel offers bpfkit, and which tools can run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheck()
		},
	}
}

func runCheck() error {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	missing := 0
	line := func(what string, err error, ok string) {
		if err != nil {
			missing++
			fmt.Fprintf(w, "%s\tno\t%v\n", what, err)
			return
		}
		fmt.Fprintf(w, "%s\tyes\t%s\n", what, ok)
	}

	var uts unix.Utsname
	_ = unix.Uname(&uts)
	fmt.Fprintf(w, "kernel\t%s\t%s\n", unix.ByteSliceToString(uts.Release[:]), unix.ByteSliceToString(uts.Machine[:]))
	line("privileges", loader.CheckPrivileges(), "CAP_BPF and CAP_PERFMON (or root)")
	_, err := loader.KernelBTF()
	line("BTF", err, "/sys/kernel/btf/vmlinux")
	line("ring buffer", features.HaveMapType(ebpf.RingBuf), "BPF_MAP_TYPE_RINGBUF (5.8+)")
	line("tracefs", loader.EnsureTracefs(), loader.TracefsPath)
	line("bpffs", loader.EnsureBPFFS(), loader.BPFFSPath)

	for _, t := range tools {
		spec, err := t.spec()
		if err != nil {
			line(t.name, err, "")
			continue
		}
		hooks, missing, err := loader.Probe(spec, t.hooks)
		if err != nil {
			line(t.name, err, "")
			continue
		}
		var have, lack []string
		for _, hs := range hooks {
			for _, h := range hs {
				if h.Kind != loader.HookTailCall {
					have = append(have, h.Name)
				}
			}
		}
		for _, err := range missing {
			lack = append(lack, err.Error())
		}
		slices.Sort(have)
		have = slices.Compact(have) // alternatives share a hook name
		slices.Sort(lack)
		switch {
		case len(have) == 0:
			line(t.name, fmt.Errorf("%s", strings.Join(lack, "; ")), "")
		case len(lack) > 0:
			fmt.Fprintf(w, "%s\tyes\t%d hooks; without: %s\n", t.name, len(have), strings.Join(lack, "; "))
		default:
			fmt.Fprintf(w, "%s\tyes\tall %d hooks: %s\n", t.name, len(have), strings.Join(have, ", "))
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if missing > 0 {
		return fmt.Errorf("%d of bpfkit's needs are missing (see above)", missing)
	}
	return nil
}
