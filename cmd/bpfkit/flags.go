package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/execsnoop"
)

// addFilterFlags registers the task filter flags named in which (a
// space-separated subset of "pid tid uid name cgroup"); verb starts their
// help ("trace", "count", "measure").
func addFilterFlags(f *pflag.FlagSet, flt *loader.TaskFilter, verb, which string) {
	for _, name := range strings.Fields(which) {
		switch name {
		case "pid":
			f.VarP(flagval.PID(&flt.PID), "pid", "p", verb+" this process only")
		case "tid":
			f.VarP(flagval.TID(&flt.TID), "tid", "t", verb+" this thread only")
		case "uid":
			f.VarP(flagval.UID(&flt.UID), "uid", "u", verb+" this user id only")
		case "name":
			f.StringVarP(&flt.Comm, "name", "n", "", verb+" tasks with this name (comm) only")
		case "cgroup":
			f.StringVar(&flt.Cgroup, "cgroup", "", verb+" tasks in this cgroup v2 directory only")
		default:
			panic("addFilterFlags: unknown flag " + name)
		}
	}
}

// addRingSize registers --ring-size: a power of two from 4 KiB to 1 GiB.
func addRingSize(f *pflag.FlagSet, p *int, def int) {
	*p = def
	f.Var(flagval.Checked(p, loader.ValidRingSize), "ring-size", "ring buffer size in bytes (a power of two from 4096)")
}

// addRows registers -r/--rows: how many rows to show, 0 for all.
func addRows(f *pflag.FlagSet, p *int, def int, help string) {
	*p = def
	f.VarP(flagval.Int(p, 0, 1<<30, "rows"), "rows", "r", fmt.Sprintf("%s (0: all)", help))
}

// addArgsLimit registers --max-args: bytes of argv kept per exec.
func addArgsLimit(f *pflag.FlagSet, p *int, help string) {
	*p = execsnoop.DefaultArgsLimit
	f.Var(flagval.Int(p, 1, execsnoop.MaxArgsLimit, "bytes"), "max-args", help)
}
