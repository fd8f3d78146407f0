package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/internal/serve"
	"github.com/bpfkit/bpfkit/pkg/loader"
)

func newCheckCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Show what this kernel offers bpfkit, and which tools can run",
		Long: `Probe the kernel for what bpfkit needs (privileges, BTF, ring buffer, tracefs,
bpffs) and, for each tool, which of its hooks exist. Exits non-zero when
something is missing. JSON lines (-o json) have the keys what, ok, detail.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := g.format()
			if err != nil {
				return err
			}
			return runCheck(format)
		},
	}
}

// checkRow is one line of check's report.
type checkRow struct {
	What   string
	OK     bool
	Detail string
}

var checkFields = []output.Field[checkRow]{
	{Header: "WHAT", Key: "what", Width: -13,
		Text: func(b []byte, r *checkRow) []byte { return append(b, r.What...) }},
	{Header: "OK", Key: "ok", Width: -3,
		Text: func(b []byte, r *checkRow) []byte {
			if r.OK {
				return append(b, "yes"...)
			}
			return append(b, "no"...)
		},
		JSON: func(b []byte, r *checkRow) []byte { return output.AppendBool(b, r.OK) }},
	{Header: "DETAIL", Key: "detail",
		Text: func(b []byte, r *checkRow) []byte { return append(b, r.Detail...) }},
}

func runCheck(format output.Format) error {
	var rows []checkRow
	missing := 0
	line := func(what string, err error, ok string) {
		if err != nil {
			missing++
			rows = append(rows, checkRow{what, false, err.Error()})
			return
		}
		rows = append(rows, checkRow{what, true, ok})
	}

	var uts unix.Utsname
	_ = unix.Uname(&uts)
	rows = append(rows, checkRow{"kernel", true, unix.ByteSliceToString(uts.Release[:]) + " " + unix.ByteSliceToString(uts.Machine[:])})
	line("privileges", loader.CheckPrivileges(), "CAP_BPF and CAP_PERFMON (or root)")
	_, err := loader.KernelBTF()
	line("BTF", err, "/sys/kernel/btf/vmlinux")
	line("ring buffer", features.HaveMapType(ebpf.RingBuf), "BPF_MAP_TYPE_RINGBUF (5.8+)")
	line("tracefs", loader.EnsureTracefs(), loader.TracefsPath)
	line("bpffs", loader.EnsureBPFFS(), loader.BPFFSPath)

	for _, tc := range toolCommands {
		t := tc.desc
		hooks, missing, err := t.Probe()
		if err != nil {
			line(t.Name, err, "")
			continue
		}
		var have, lack []string
		for _, hs := range hooks {
			for _, h := range hs {
				if h.Attachable() {
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
			line(t.Name, fmt.Errorf("%s", strings.Join(lack, "; ")), "")
		case len(lack) > 0:
			line(t.Name, nil, fmt.Sprintf("%d hooks; without: %s", len(have), strings.Join(lack, "; ")))
		default:
			line(t.Name, nil, fmt.Sprintf("all %d hooks: %s", len(have), strings.Join(have, ", ")))
		}
	}
	if ok, detail := serveRow(); ok {
		line("serve", nil, detail)
	} else {
		line("serve", errors.New(detail), "")
	}
	p := output.NewPrinter(os.Stdout, format, checkFields)
	if err := p.Header(); err != nil {
		return err
	}
	for i := range rows {
		if err := p.Print(&rows[i]); err != nil {
			return err
		}
	}
	if err := p.Flush(); err != nil {
		return err
	}
	if missing > 0 {
		return fmt.Errorf("%d of bpfkit's needs are missing (see above)", missing)
	}
	return nil
}

// serveRow says which of serve's tools this kernel can run: ok when at
// least one can.
func serveRow() (bool, string) {
	var can, cannot []string
	for _, t := range serve.Tools {
		if t.Spec == nil { // reads pinned state only
			can = append(can, t.Name)
			continue
		}
		if _, _, err := t.Probe(); err != nil {
			cannot = append(cannot, fmt.Sprintf("%s (%v)", t.Name, err))
			continue
		}
		can = append(can, t.Name)
	}
	detail := "can run " + strings.Join(can, ",") + "; default " + strings.Join(serve.DefaultTools(), ",")
	if len(cannot) > 0 {
		detail += "; cannot run " + strings.Join(cannot, "; ")
	}
	return len(can) > 0, detail
}
