package main

import (
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bpfkit/bpfkit/internal/flagval"
	"github.com/bpfkit/bpfkit/internal/serve"
	"github.com/bpfkit/bpfkit/internal/userfs"
)

// toolsValue is the --tools flag: names checked when parsed.
type toolsValue struct{ p *[]string }

func (v toolsValue) String() string { return strings.Join(*v.p, ",") }
func (v toolsValue) Type() string   { return "tools" }
func (v toolsValue) Set(s string) error {
	tools, err := serve.ParseTools(s)
	if err == nil {
		*v.p = tools
	}
	return err
}

// pidsValue is the --malloc-pids flag: process ids, comma-separated.
type pidsValue struct{ p *[]int }

func (v pidsValue) String() string {
	s := make([]string, len(*v.p))
	for i, pid := range *v.p {
		s[i] = strconv.Itoa(pid)
	}
	return strings.Join(s, ",")
}
func (v pidsValue) Type() string { return "pids" }
func (v pidsValue) Set(s string) error {
	var pids []int
	for _, part := range strings.Split(s, ",") {
		var pid uint32
		if err := flagval.PID(&pid).Set(strings.TrimSpace(part)); err != nil {
			return fmt.Errorf("%s: %w (PID,PID,...)", flagval.Quote(part), err)
		}
		if !slices.Contains(pids, int(pid)) {
			pids = append(pids, int(pid))
		}
	}
	*v.p = pids
	return nil
}

// listenValue is the --listen flag: HOST:PORT with an IP address (IPv6 in
// brackets) or no host (every address), and a port number.
type listenValue struct{ p *string }

func (v listenValue) String() string { return *v.p }
func (v listenValue) Type() string   { return "address" }
func (v listenValue) Set(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("give HOST:PORT, such as 127.0.0.1:10064, [::1]:10064 or :10064 (every address)")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("port %s: give a number from 1 to 65535", flagval.Quote(port))
	}
	if host != "" && net.ParseIP(host) == nil {
		return fmt.Errorf("host %s: give an IPv4 or IPv6 address (IPv6 in brackets: [::1]:10064)", flagval.Quote(host))
	}
	*v.p = s
	return nil
}

func newServeCmd(g *globalFlags) *cobra.Command {
	var (
		listen     = serve.DefaultListen
		tools      = serve.DefaultTools()
		maxSeries  = serve.DefaultMaxSeries
		configFile string
		mallocPIDs []int
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Export in-kernel per-cgroup counts as Prometheus metrics",
		Long: `Load the chosen tools' programs, which count in the kernel per cgroup (no
per-pid labels), and serve them for Prometheus on /metrics (text format or
OpenMetrics), with /healthz and /readyz. The maps are read only when
scraped: nothing is polled when nobody scrapes. Cgroups are labelled by
their path below the cgroup2 mount, with container_id, runtime and pod_uid
for containers; beyond --max-series series per metric the rest is summed
into cgroup="other" (bpfkit_series_dropped_total counts those series).

Tools: ` + toolList() + `
Default: ` + strings.Join(serve.DefaultTools(), ",") + ` (the others add work to every
wakeup or system call of the machine: choose them with --tools).

--config names a TOML file (tools = [...], max_series = N), read again on
SIGHUP; flags given on the command line win over it. SIGTERM or Ctrl-C
detaches everything and exits 0.

--malloc-pids PID,... also counts the bytes those processes ask their
allocator for (bpfkit_malloc_bytes_total{cgroup,...,allocator}), by uprobes
on the allocator of each, for that process alone: every malloc, calloc,
realloc... they make traps into the kernel, so it is for the processes
worth watching, never the default.`,
		Example: `  bpfkit serve
  bpfkit serve --listen [::]:10064 --tools all
  bpfkit serve --config /etc/bpfkit/serve.toml
  bpfkit serve --malloc-pids 1234,5678`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := cmd.Flags()
			// options: defaults, then the file, then the flags given.
			options := func() (serve.Options, error) {
				opts := serve.Options{Tools: tools, MaxSeries: maxSeries, MallocPIDs: mallocPIDs, Debug: g.debug}
				if configFile == "" {
					return opts, nil
				}
				data, err := userfs.ReadFile(configFile, 1<<20)
				if err != nil {
					return opts, fmt.Errorf("--config: %w", err)
				}
				cfg, err := serve.ParseConfig(data)
				if err != nil {
					return opts, fmt.Errorf("--config %s: %w", flagval.Cut(configFile), err)
				}
				if cfg.Tools != nil && !flags.Changed("tools") {
					opts.Tools = cfg.Tools
				}
				if cfg.MaxSeries != 0 && !flags.Changed("max-series") {
					opts.MaxSeries = cfg.MaxSeries
				}
				return opts, nil
			}
			opts, err := options()
			if err != nil {
				return err
			}
			if len(opts.Tools) == 0 {
				return fmt.Errorf("no tool to run: name at least one with --tools (%s)", strings.Join(serve.ToolNames(), ","))
			}
			// Bind before loading: a taken address attaches nothing.
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w (give a free address with --listen)", listen, err)
			}
			defer ln.Close()
			e, err := serve.New(opts)
			if err != nil {
				return err
			}
			defer e.Close()
			if os.Getenv("GOMEMLIMIT") == "" {
				debug.SetMemoryLimit(serve.MemoryLimit)
			}
			fmt.Fprintf(os.Stderr, "bpfkit serve: listening on http://%s/metrics; tools %s\n", ln.Addr(), strings.Join(e.Running(), ","))
			return serve.Run(cmd.Context(), ln, e, options, os.Stderr)
		},
	}
	f := cmd.Flags()
	f.Var(listenValue{&listen}, "listen", "address to serve on, HOST:PORT (IPv4, [IPv6], or :PORT for every address)")
	f.Var(toolsValue{&tools}, "tools", "tools to run, comma-separated (or all, default)")
	f.Var(flagval.Checked(&maxSeries, serve.CheckMaxSeries), "max-series", "series per metric at most; the rest is summed into cgroup=\"other\"")
	f.StringVar(&configFile, "config", "", "TOML file of tools and max_series, read again on SIGHUP")
	f.Var(pidsValue{&mallocPIDs}, "malloc-pids", "count the bytes these processes allocate, per cgroup and allocator (PID,PID,...; uprobes: not free)")
	return cmd
}

func toolList() string {
	var b strings.Builder
	for _, t := range serve.Tools {
		fmt.Fprintf(&b, "\n  %-8s %s", t.Name, t.Summary)
	}
	return b.String()
}
