package serve

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/tool"
	"github.com/bpfkit/bpfkit/pkg/trace/bio"
	"github.com/bpfkit/bpfkit/pkg/trace/drops"
	"github.com/bpfkit/bpfkit/pkg/trace/filetop"
	"github.com/bpfkit/bpfkit/pkg/trace/netrx"
	"github.com/bpfkit/bpfkit/pkg/trace/opensnoop"
	"github.com/bpfkit/bpfkit/pkg/trace/softirqs"
	"github.com/bpfkit/bpfkit/pkg/trace/syscount"
)

// A Tool is one sampler serve can run: what it loads into the kernel and
// how its maps become metrics at scrape time. Nothing runs between scrapes
// but the kernel's own counting.
type Tool struct {
	// Descriptor names the tool, its BPF object (Spec nil for a tool
	// that only reads what others pinned: xdp), its hooks and metrics.
	tool.Descriptor
	// Default: cheap enough to run always (see DefaultTools).
	Default bool
	collect func(e *Exporter, objs *loader.Objects, ch chan<- prometheus.Metric) error
	// open loads a tool that needs more than its object (malloc: the
	// processes of --malloc-pids), in place of load; collectOwn reads it.
	open       func(opts Options) (opened, error)
	collectOwn func(e *Exporter, own opened, ch chan<- prometheus.Metric) error
}

// opened is a tool loaded by its own open.
type opened interface {
	Health() loader.Health
	Close() error
}

// Tools is every tool serve can run, in the order they are read.
//
// The default set is exec, exit, cswitch and xdp. exec and exit run once
// per process; cswitch adds a map lookup and an increment to each context
// switch (tens of nanoseconds on a BTF tracepoint); xdp costs nothing in
// the kernel beyond the filters already loaded (serve only reads their
// pinned counters).
// runqlat adds work to every wakeup as well as every switch; fileio and
// openerr use syscall tracepoints, and attaching any syscall tracepoint
// sends every system call of every task through the kernel's slower
// traced path: those three are there to be chosen with --tools.
//
// oom is default too: it runs at each signal the kernel sends (one compare
// unless it is a kernel SIGKILL) and at each OOM kill. zombies waits at the
// wait4 and waitid syscall tracepoints and syscalls at raw_syscalls:sys_exit:
// syscall tracepoints again, so neither is default.
//
// Every default tool is on BTF tracepoints (raw ones where those are
// missing), which need no perf event and no tracefs: serve starts with the
// capabilities of the shipped units (CAP_BPF, CAP_PERFMON,
// CAP_DAC_READ_SEARCH) also where the kernel lets only CAP_SYS_ADMIN open
// perf events (perf_event_paranoid 3, Debian's).
//
// bio runs at the start, issue and completion of every block I/O request
// (a hash map update, lookup and delete per request): little next to the
// I/O itself, but it is chosen with --tools.
var Tools = []*Tool{
	{
		Descriptor: tool.Descriptor{
			Name: "exec", Kind: tool.Sampler, Summary: "successful execs per cgroup",
			Spec:    loadServeExec,
			Hooks:   loader.Options{Alternatives: [][]string{{serveExecProgSchedProcessExecBtf, serveExecProgSchedProcessExecRaw}}},
			Metrics: []string{"bpfkit_exec_total"},
		},
		Default: true,
		collect: withMaps(collectExec),
	},
	{
		Descriptor: tool.Descriptor{
			Name: "exit", Kind: tool.Sampler, Summary: "process exits per cgroup and signal",
			Spec:    loadServeExit,
			Hooks:   loader.Options{Alternatives: [][]string{{serveExitProgSchedProcessExitBtf, serveExitProgSchedProcessExitRaw}}},
			Metrics: []string{"bpfkit_exit_total"},
		},
		Default: true,
		collect: withMaps(collectExit),
	},
	{
		Descriptor: tool.Descriptor{
			Name: "cswitch", Kind: tool.Sampler, Summary: "voluntary and involuntary context switches per cgroup",
			Spec:    loadServeCswitch,
			Hooks:   loader.Options{Alternatives: [][]string{{"sched_switch_btf", "sched_switch_raw"}}},
			Metrics: []string{"bpfkit_context_switches_total"},
		},
		Default: true,
		collect: withMaps(collectCswitch),
	},
	{
		Descriptor: tool.Descriptor{
			Name: "runqlat", Kind: tool.Sampler, Summary: "run-queue latency histogram per cgroup",
			Spec: loadServeRunqlat,
			Hooks: loader.Options{Alternatives: [][]string{
				{"sched_switch_btf", "sched_switch_raw"},
				{"sched_wakeup_btf", "sched_wakeup_raw"},
				{"sched_wakeup_new_btf", "sched_wakeup_new_raw"},
			}},
			Metrics: []string{"bpfkit_runqueue_latency_seconds"},
		},
		collect: withMaps(collectRunqlat),
	},
	{
		Descriptor: tool.Descriptor{
			Name: "fileio", Kind: tool.Sampler, Summary: "read and write calls and bytes on regular files per cgroup",
			Spec:    loadServeFileio,
			Hooks:   loader.Options{AlsoAttach: filetop.AlsoAttach},
			Metrics: []string{"bpfkit_file_io_bytes_total", "bpfkit_file_io_ops_total"},
		},
		collect: withMaps(collectFileio),
	},
	{
		Descriptor: tool.Descriptor{
			Name: "openerr", Kind: tool.Sampler, Summary: "failed opens per cgroup and errno",
			Spec:    loadServeOpenerr,
			Hooks:   loader.Options{AlsoAttach: opensnoop.AlsoAttach},
			Metrics: []string{"bpfkit_open_errors_total"},
		},
		collect: withMaps(collectOpenerr),
	},
	{
		Descriptor: tool.Descriptor{
			Name: "oom", Kind: tool.Sampler, Summary: "OOM kills per cgroup of the victim",
			Spec:    loadServeOom,
			Hooks:   loader.Options{Alternatives: [][]string{{serveOomProgMarkVictimBtf, serveOomProgMarkVictimRaw}}},
			Metrics: []string{"bpfkit_oom_kills_total"},
		},
		Default: true,
		collect: withMaps(collectOOM),
	},
	{
		Descriptor: tool.Descriptor{
			Name: "zombies", Kind: tool.Sampler, Summary: "time processes stayed zombies, histogram per cgroup",
			Spec:    loadServeZombies,
			Hooks:   loader.Options{Alternatives: [][]string{{serveZombiesProgSchedProcessFreeBtf, serveZombiesProgSchedProcessFreeRaw}}},
			Metrics: []string{"bpfkit_zombie_seconds"},
		},
		collect: withMaps(collectZombies),
	},
	{
		Descriptor: tool.Descriptor{
			Name: "syscalls", Kind: tool.Sampler, Summary: "system calls and failed ones per cgroup and syscall",
			Spec:    loadServeSyscalls,
			Metrics: []string{"bpfkit_syscalls_total", "bpfkit_syscall_errors_total"},
		},
		open:       openSyscalls,
		collectOwn: collectSyscalls,
	},
	{
		Descriptor: tool.Descriptor{
			Name: "xdp", Kind: tool.Sampler, Summary: "packets and bytes of every pinned bpfkit XDP filter",
			Metrics: []string{"bpfkit_xdp_packets_total", "bpfkit_xdp_bytes_total"},
		},
		Default: true,
		collect: collectXDP,
	},
	{
		Descriptor: tool.Descriptor{
			Name: "tcp", Kind: tool.Sampler, Summary: "TCP connections closed and segments retransmitted per cgroup of the socket's owner",
			Spec:    serveTCPSpec,
			Metrics: []string{"bpfkit_tcp_connections_closed_total", "bpfkit_tcp_retransmits_total"},
		},
		collect: withMaps(collectTCP),
	},
	{
		Descriptor: bio.Serve,
		collect:    collectBio,
	},
	{
		// The packet path (net.go): not per cgroup; drops in summary mode.
		Descriptor: withSpec(drops.Tool, drops.SummarySpec),
		collect:    collectDrops,
	},
	{
		Descriptor: softirqs.Tool,
		collect:    collectSoftirqs,
	},
	{
		Descriptor: netrx.Tool,
		collect:    collectNetrx,
	},
}

// ToolNames lists the names of Tools.
func ToolNames() []string {
	names := make([]string, len(Tools))
	for i, t := range Tools {
		names[i] = t.Name
	}
	return names
}

// DefaultTools lists the tools serve runs unless told otherwise.
func DefaultTools() []string {
	var names []string
	for _, t := range Tools {
		if t.Default {
			names = append(names, t.Name)
		}
	}
	return names
}

// ParseTools reads a comma-separated list of tool names; "all" is every
// tool, "default" the default set.
func ParseTools(s string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		var names []string
		switch name {
		case "all":
			names = ToolNames()
		case "default":
			names = DefaultTools()
		default:
			if toolByName(name) == nil {
				return nil, fmt.Errorf("no tool %q: choose among %s, all, default", name, strings.Join(ToolNames(), ", "))
			}
			names = []string{name}
		}
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out, nil
}

func toolByName(name string) *Tool {
	for _, t := range Tools {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// load loads and attaches the tool's programs.
func (t *Tool) load(debug bool) (*loader.Objects, error) {
	if t.Spec == nil {
		return nil, nil
	}
	spec, err := t.Spec()
	if err != nil {
		return nil, err
	}
	// serve sends no events: the smallest ring
	objs, err := t.Load(spec, loader.Options{RingSize: 4096, Debug: debug})
	if err != nil {
		return nil, fmt.Errorf("tool %s: %w", t.Name, err)
	}
	return objs, nil
}

// withMaps makes a collect function of read, which reads the tool's maps
// through M, its bpf2go-generated serveXxxMaps struct, filled from the
// loaded objects (loader.Objects.Assign) at each scrape.
func withMaps[M any](read func(e *Exporter, m *M, ch chan<- prometheus.Metric) error) func(*Exporter, *loader.Objects, chan<- prometheus.Metric) error {
	return func(e *Exporter, objs *loader.Objects, ch chan<- prometheus.Metric) error {
		var m M
		if err := objs.Assign(&m); err != nil {
			return err
		}
		return read(e, &m, ch)
	}
}

func collectExec(e *Exporter, m *serveExecMaps, _ chan<- prometheus.Metric) error {
	f := e.families[descExec]
	return loader.ReadAll(m.Execs, func(id, n *uint64) {
		f.add(e.cgroups.lookup(*id), "", float64(*n))
	})
}

func collectExit(e *Exporter, m *serveExitMaps, _ chan<- prometheus.Metric) error {
	f := e.families[descExit]
	return loader.ReadAll(m.Exits, func(k *serveExitServeExitKey, n *uint64) {
		f.add(e.cgroups.lookup(k.Cgroup), signalName(k.Signal), float64(*n))
	})
}

// signalName is "" for 0 (a normal exit), else the signal's name.
func signalName(sig uint32) string {
	if sig == 0 {
		return ""
	}
	if name := unix.SignalName(syscall.Signal(sig)); name != "" {
		return name
	}
	return "SIG" + strconv.Itoa(int(sig)) // a real-time signal
}

// collectCswitch adds up each cgroup's switches: those its threads left
// when they exited or changed cgroup (retired), then those its threads
// counted since (their entries). retired is read first: a thread's counts
// move from its entry to retired, and a move between the two reads is then
// missed by this scrape (never counted twice), so the sum can come out
// lower than the truth. The family keeps its series from going down
// (family.rising): Prometheus takes a counter that goes down for a reset.
func collectCswitch(e *Exporter, m *serveCswitchMaps, _ chan<- prometheus.Metric) error {
	f := e.families[descSwitches]
	f.rising(m.Retired)
	add := func(id uint64, voluntary, involuntary uint64) {
		cg := e.cgroups.lookup(id)
		f.add(cg, "voluntary", float64(voluntary))
		f.add(cg, "involuntary", float64(involuntary))
	}
	if err := loader.ReadAll(m.Retired, func(id *uint64, c *serveCswitchServeCswitch) {
		add(*id, c.Voluntary, c.Involuntary)
	}); err != nil {
		return err
	}
	return loader.ReadAll(m.Threads, func(_ *uint32, t *serveCswitchServeCswitchThread) {
		add(t.Cgroup, t.Voluntary, t.Involuntary)
	})
}

func collectRunqlat(e *Exporter, m *serveRunqlatMaps, _ chan<- prometheus.Metric) error {
	f := e.families[descRunqlat]
	return loader.ReadAll(m.Hists, func(id *uint64, h *serveRunqlatServeHist) {
		f.addHist(e.cgroups.lookup(*id), &histogram{slots: h.Slots, sumNs: h.SumNs})
	})
}

func collectFileio(e *Exporter, m *serveFileioMaps, _ chan<- prometheus.Metric) error {
	ops, bytes := e.families[descFileOps], e.families[descFileBytes]
	return loader.ReadAll(m.Fileio, func(id *uint64, s *serveFileioServeFileio) {
		cg := e.cgroups.lookup(*id)
		ops.add(cg, "read", float64(s.Reads))
		ops.add(cg, "write", float64(s.Writes))
		bytes.add(cg, "read", float64(s.ReadBytes))
		bytes.add(cg, "write", float64(s.WriteBytes))
	})
}

func collectOpenerr(e *Exporter, m *serveOpenerrMaps, _ chan<- prometheus.Metric) error {
	f := e.families[descOpenErrors]
	return loader.ReadAll(m.OpenErrors, func(k *serveOpenerrServeErrnoKey, n *uint64) {
		f.add(e.cgroups.lookup(k.Cgroup), errnoName(k.Err), float64(*n))
	})
}

// errnoName is the errno's name (ENOENT), or its number if it has none.
func errnoName(err uint32) string {
	if name := unix.ErrnoName(syscall.Errno(err)); name != "" {
		return name
	}
	return strconv.Itoa(int(err))
}

// serveTCPSpec is serve_tcp without the accept exits: serve attributes an
// accepted socket to its listener's cgroup until its owner closes it, and
// attaches no syscall tracepoint (see Tools).
func serveTCPSpec() (*ebpf.CollectionSpec, error) {
	spec, err := loadServeTcp()
	if err != nil {
		return nil, err
	}
	delete(spec.Programs, serveTcpProgExitAccept)
	delete(spec.Programs, serveTcpProgExitAccept4)
	return spec, nil
}

func collectTCP(e *Exporter, m *serveTcpMaps, _ chan<- prometheus.Metric) error {
	closed, retrans := e.families[descTCPClosed], e.families[descTCPRetransmits]
	if err := loader.ReadAll(m.Closed, func(id, n *uint64) {
		closed.add(e.cgroups.lookup(*id), "", float64(*n))
	}); err != nil {
		return err
	}
	return loader.ReadAll(m.Retransmits, func(id, n *uint64) {
		retrans.add(e.cgroups.lookup(*id), "", float64(*n))
	})
}

func collectOOM(e *Exporter, m *serveOomMaps, _ chan<- prometheus.Metric) error {
	f := e.families[descOOMKills]
	return loader.ReadAll(m.OomKills, func(id, n *uint64) {
		f.add(e.cgroups.lookup(*id), "", float64(*n))
	})
}

// collectZombies reads serve_hist values: the layout runqlat's Go type has.
func collectZombies(e *Exporter, m *serveZombiesMaps, _ chan<- prometheus.Metric) error {
	f := e.families[descZombies]
	return loader.ReadAll(m.ZombieHists, func(id *uint64, h *serveRunqlatServeHist) {
		f.addHist(e.cgroups.lookup(*id), &histogram{slots: h.Slots, sumNs: h.SumNs})
	})
}

// openSyscalls loads serve_syscalls as syscount loads its object, with
// the syscall names of the kernel's table (syscount.LoadNamed).
func openSyscalls(opts Options) (opened, error) {
	spec, err := loadServeSyscalls()
	if err != nil {
		return nil, err
	}
	// serve sends no events: the smallest ring
	named, err := syscount.LoadNamed(spec, loader.Options{RingSize: 4096, Debug: opts.Debug})
	if err != nil {
		return nil, fmt.Errorf("tool syscalls: %w", err)
	}
	return named, nil
}

func collectSyscalls(e *Exporter, own opened, _ chan<- prometheus.Metric) error {
	named := own.(*syscount.Named)
	var m serveSyscallsMaps
	if err := named.Assign(&m); err != nil {
		return err
	}
	calls, errs := e.families[descSyscalls], e.families[descSyscallErrors]
	return loader.ReadAll(m.Syscalls, func(k *serveSyscallsServeSyscallKey, v *serveSyscallsServeSyscall) {
		cg, name := e.cgroups.lookup(k.Cgroup), named.Name(k.Nr)
		calls.add(cg, name, float64(v.Calls))
		errs.add(cg, name, float64(v.Errors))
	})
}

// collectBio sends the latency histograms per device and operation
// (machine-wide: a request completes on behalf of no task) and adds the
// bytes per cgroup, device and direction.
func collectBio(e *Exporter, objs *loader.Objects, ch chan<- prometheus.Metric) error {
	hists, use, err := bio.ReadServe(objs, e.disks)
	if err != nil {
		return err
	}
	for _, h := range hists {
		hist := histogram{slots: h.Buckets, sumNs: uint64(h.Sum)}
		ch <- prometheus.MustNewConstHistogram(descBlockLatency, hist.count(), h.Sum.Seconds(), hist.buckets(), h.Disk, h.Op)
	}
	f := e.families[descBlockBytes]
	for _, u := range use {
		f.add(e.cgroups.lookup(u.Cgroup), extraValues(u.Disk, u.Dir), float64(u.Bytes))
	}
	return nil
}
