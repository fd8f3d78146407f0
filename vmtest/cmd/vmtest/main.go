// Command vmtest fetches kernels and runs the kernel × package test matrix.
//
//	vmtest fetch [-update] [KERNEL...]
//	vmtest matrix [flags] [PACKAGES...]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bpfkit/bpfkit/vmtest"
)

func main() {
	flag.Usage = usage
	flag.Parse()
	if flag.NArg() < 1 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch flag.Arg(0) {
	case "fetch":
		os.Exit(fetch(ctx, flag.Args()[1:]))
	case "matrix":
		os.Exit(matrix(ctx, flag.Args()[1:]))
	case "vng-setup":
		os.Exit(vngSetup(ctx, flag.Args()[1:]))
	default:
		usage()
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  vmtest fetch [-update] [KERNEL...]   download kernels into .vmtest/ (default: `+strings.Join(vmtest.DefaultKernels, " ")+`)
  vmtest matrix [flags] [PACKAGE...]   run every package's tests on every kernel (default ./...)
  vmtest vng-setup [KERNEL...]         install virtme-ng (apt), unpack virtiofsd, depmod the kernels, for -runner vng
Run "vmtest matrix -h" for the matrix flags.`)
}

func splitList(specs []string) []string {
	var out []string
	for _, s := range specs {
		out = append(out, strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })...)
	}
	return out
}

// vmKernels returns the kernel specs named in args (DefaultKernels if none)
// without "host", which needs no VM.
func vmKernels(args []string) []string {
	specs := splitList(args)
	if len(specs) == 0 {
		specs = vmtest.DefaultKernels
	}
	return slices.DeleteFunc(specs, func(s string) bool { return s == "host" })
}

func fetch(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("fetch", flag.ExitOnError)
	update := fs.Bool("update", false, "refresh the package lists and fetch newer kernels")
	cache := fs.String("cache", "", "cache directory (default .vmtest at the module root)")
	fs.Parse(args)
	c := vmtest.NewCache(*cache)
	rc := 0
	for _, s := range vmKernels(fs.Args()) {
		if _, err := os.Stat(s); err == nil {
			continue // a local kernel image or tree, nothing to fetch
		}
		k, err := c.Fetch(ctx, s, *update)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vmtest: %s: %v\n", s, err)
			rc = 1
			continue
		}
		fmt.Printf("%-6s %s  %s\n", s, k.Release, k.Image)
	}
	return rc
}

// vngSetup makes `vng --run` work with the kernels in the cache: installs
// Debian's virtme-ng package (from the newest of Suites that has it; its
// dependencies and udev come from the host's own suites) with the host's
// apt-get, unpacks a virtiofsd vng can use, and writes depmod's output for
// each kernel.
func vngSetup(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("vng-setup", flag.ExitOnError)
	cache := fs.String("cache", "", "cache directory (default .vmtest at the module root)")
	fs.Parse(args)
	c := vmtest.NewCache(*cache)
	var install []string
	if _, err := exec.LookPath("vng"); err != nil {
		dir, err := os.MkdirTemp(c.Dir, "debs-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "vmtest: %v\n", err)
			return 1
		}
		defer os.RemoveAll(dir)
		deb, err := c.DownloadDeb(ctx, vmtest.VngPackage, dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vmtest: %v\n", err)
			return 1
		}
		install = append(install, deb)
	}
	if !vmtest.HostUdevd() {
		install = append(install, "udev")
	}
	if len(install) > 0 {
		if err := aptInstall(ctx, install); err != nil {
			fmt.Fprintf(os.Stderr, "vmtest: %v\n", err)
			return 1
		}
	}
	out, err := exec.CommandContext(ctx, "vng", "--version").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "vmtest: vng --version: %v: %s\n", err, out)
		return 1
	}
	fmt.Printf("vng        %s", out)
	dir, err := c.VirtiofsdDir(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vmtest: virtiofsd: %v\n", err)
		return 1
	}
	if dir == "" {
		fmt.Printf("virtiofsd  %s\n", vmtest.HostVirtiofsd())
	} else {
		fmt.Printf("virtiofsd  %s/virtiofsd (give vng PATH=%s:$PATH)\n", dir, dir)
	}
	rc := 0
	for _, s := range vmKernels(fs.Args()) {
		k, err := c.Resolve(ctx, s)
		if err == nil {
			err = c.Depmod(ctx, k)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "vmtest: %s: %v\n", s, err)
			rc = 1
			continue
		}
		fmt.Printf("%-10s %s\n", s, k.Image)
	}
	return rc
}

// aptInstall installs packages (names or .deb paths) with the host's
// apt-get, without recommended packages, refreshing the host's package
// lists once if the first attempt fails.
func aptInstall(ctx context.Context, pkgs []string) error {
	args := append([]string{"install", "-y", "-q", "--no-install-recommends"}, pkgs...)
	run := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return cmd.CombinedOutput()
	}
	fmt.Fprintf(os.Stderr, "vmtest: apt-get %s\n", strings.Join(args, " "))
	if _, err := run(args...); err == nil {
		return nil
	}
	if out, err := run("update", "-qq"); err != nil {
		return fmt.Errorf("apt-get update: %v\n%s", err, out)
	}
	if out, err := run(args...); err != nil {
		return fmt.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

type job struct {
	kernel, pkg, bin, dir string
}

func matrix(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("matrix", flag.ExitOnError)
	kernels := fs.String("kernels", strings.Join(vmtest.DefaultKernels, " "), "kernels (version prefixes) to test on; \"host\" = the running kernel")
	host := fs.Bool("host", true, "also run the tests directly on the host kernel")
	runner := fs.String("runner", "qemu", "qemu or vng")
	vmrun := fs.String("vmrun", "", "vmrun binary (default: vmrun next to this program, else built)")
	out := fs.String("out", "", "write the markdown table to this file (e.g. docs/compat.md)")
	par := fs.Int("p", runtime.NumCPU(), "VMs to run in parallel")
	run := fs.String("run", "", "-test.run pattern")
	timeout := fs.Duration("timeout", 10*time.Minute, "-test.timeout per package")
	short := fs.Bool("short", false, "pass -test.short to the tests in VMs (emulated VMs are slow; the host run stays full)")
	verbose := fs.Bool("v", false, "print test output of every run, not only of failures")
	withSelf := fs.Bool("self", false, "include vmtest's own packages (they start qemu; by default they run on the host only via go test ./vmtest/...)")
	fs.Parse(args)
	patterns := fs.Args()
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	root := vmtest.ModuleRoot()
	if root == "" {
		fmt.Fprintln(os.Stderr, "vmtest: run inside the bpfkit module")
		return 2
	}
	cache := vmtest.NewCache("")

	// Kernels first (serially: apt shares state).
	m := vmtest.NewMatrix()
	specs := splitList([]string{*kernels})
	if *host && !contains(specs, "host") {
		specs = append(specs, "host")
	}
	kernelArg := map[string]string{}
	rc := 0
	for _, s := range specs {
		if s == "host" {
			var u syscall.Utsname
			syscall.Uname(&u)
			m.Releases[s] = utsString(u.Release[:])
			kernelArg[s] = "host"
			m.Kernels = append(m.Kernels, s)
			continue
		}
		k, err := cache.Resolve(ctx, s)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vmtest: kernel %s: %v\n", s, err)
			rc = 1
			continue
		}
		label := s
		if strings.ContainsRune(s, '/') && k.Release != "" {
			label = k.Release // a path: show the release instead
		}
		m.Releases[label] = k.Release
		// The unpacked package root, so vmrun finds modules and config
		// without resolving the prefix again.
		kernelArg[label] = k.Root
		if k.Root == "" {
			kernelArg[label] = k.Image
		}
		m.Kernels = append(m.Kernels, label)
	}

	// Packages with tests.
	pkgs, dirs, err := testPackages(ctx, root, patterns, *withSelf)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vmtest: %v\n", err)
		return 2
	}
	if len(pkgs) == 0 || len(m.Kernels) == 0 {
		fmt.Fprintln(os.Stderr, "vmtest: no packages with tests or no kernels")
		return 1
	}

	// Tools.
	bindir := filepath.Join(cache.Dir, "bin")
	os.MkdirAll(bindir, 0o755)
	if *vmrun == "" {
		if exe, err := os.Executable(); err == nil && isFile(filepath.Join(filepath.Dir(exe), "vmrun")) {
			*vmrun = filepath.Join(filepath.Dir(exe), "vmrun")
		} else {
			if err := goBuild(ctx, root, filepath.Join(bindir, "vmrun"), "./vmtest/cmd/vmrun"); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			*vmrun = filepath.Join(bindir, "vmrun")
		}
	}
	if os.Getenv("VMTEST_INIT") == "" {
		if init, err := vmtest.FindInit(ctx); err == nil {
			os.Setenv("VMTEST_INIT", init)
		}
	}

	// Build each package's test binary once (static, so it runs in the guest).
	// Under the cache, not /tmp: vng guests see the host filesystem but get
	// their own /tmp.
	testdir, err := os.MkdirTemp(cache.Dir, "tests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(testdir)
	bins := map[string]string{}
	for i, p := range pkgs {
		bin := filepath.Join(testdir, fmt.Sprintf("%03d-%s.test", i, filepath.Base(p)))
		cmd := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, p)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if outb, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "vmtest: go test -c %s: %v\n%s", p, err, outb)
			for _, k := range m.Kernels {
				m.Set(k, p, &vmtest.Outcome{Status: "build-fail", Output: string(outb)})
			}
			continue
		}
		if isFile(bin) {
			bins[p] = bin
		}
	}
	// A package whose tests vanished since go list (no binary) has no row.
	var rows []string
	for _, p := range pkgs {
		if bins[p] != "" || m.Get(m.Kernels[0], p) != nil {
			rows = append(rows, p)
		}
	}
	m.Packages = rows

	hostOnly, err := hostOnlyPackages(ctx, root, patterns, bins, dirs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vmtest: %v\n", err)
		return 2
	}
	var jobs []job
	for _, k := range m.Kernels {
		for _, p := range pkgs {
			switch {
			case bins[p] == "":
			case k != "host" && hostOnly[p] != "":
				m.Set(k, p, &vmtest.Outcome{Status: vmtest.HostOnly, Output: hostOnly[p]})
				fmt.Fprintf(os.Stderr, "vmtest: %-6s %-50s host only (%s)\n", k, strings.TrimPrefix(p, vmtest.ModulePath+"/"), hostOnly[p])
			default:
				jobs = append(jobs, job{k, p, bins[p], dirs[p]})
			}
		}
	}
	q := &queue{jobs: jobs}
	q.cond = sync.NewCond(&q.mu)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range max(*par, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j, ok := q.next()
				if !ok {
					return
				}
				o := runJob(ctx, j, *vmrun, kernelArg[j.kernel], *runner, *run, *timeout, *short)
				if o.Status == "no-run" && ctx.Err() == nil {
					// No verdict at all: the runner itself (go, test2json
					// or vmrun) died, not a test. Its output and exit are
					// shown, and the cell runs once more; a second one is
					// the cell's result.
					mu.Lock()
					fmt.Fprintf(os.Stderr, "vmtest: %-6s %s gave no verdict, running it once more\n---- output ----\n%s---- end ----\n",
						j.kernel, strings.TrimPrefix(j.pkg, vmtest.ModulePath+"/"), o.Output)
					mu.Unlock()
					o = runJob(ctx, j, *vmrun, kernelArg[j.kernel], *runner, *run, *timeout, *short)
				}
				mu.Lock()
				m.Set(j.kernel, j.pkg, o)
				fmt.Fprintf(os.Stderr, "vmtest: %-6s %-50s %s (%.1fs)\n", j.kernel, strings.TrimPrefix(j.pkg, vmtest.ModulePath+"/"), o.Cell(), o.Elapsed)
				if o.IsFailure() || *verbose {
					fmt.Fprintf(os.Stderr, "---- output %s on %s ----\n%s---- end ----\n", j.pkg, j.kernel, o.Output)
				}
				mu.Unlock()
				q.done(j)
			}
		}()
	}
	wg.Wait()

	fmt.Print("\n" + m.Text(vmtest.ModulePath+"/"))
	if *out != "" {
		gen := fmt.Sprintf("Last run: %s. %s", time.Now().UTC().Format("2006-01-02 15:04 UTC"), vmtest.RunnerNote(m.Kernels, *runner, vmtest.Accel()))
		err := os.MkdirAll(filepath.Dir(*out), 0o755)
		if err == nil {
			err = os.WriteFile(*out, []byte(m.Markdown(vmtest.ModulePath+"/", gen)), 0o644)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "vmtest: write %s: %v\n", *out, err)
			rc = 1
		} else {
			fmt.Printf("wrote %s\n", *out)
		}
	}
	if m.Failed() {
		rc = 1
	}
	return rc
}

func runJob(ctx context.Context, j job, vmrun, kernel, runner, run string, timeout time.Duration, short bool) *vmtest.Outcome {
	args := []string{"tool", "test2json", "-t", "-p", j.pkg, vmrun, "-kernel", kernel, "-runner", runner, j.bin,
		"-test.v=test2json", "-test.count=1", "-test.timeout=" + timeout.String()}
	if run != "" {
		args = append(args, "-test.run="+run)
	}
	if short && kernel != "host" {
		args = append(args, "-test.short")
	}
	if kernel != "host" {
		args = append(args, "-test.skip="+vmtest.HostOnlyTests)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = j.dir
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	start := time.Now()
	runErr := cmd.Run()
	o, err := vmtest.ParseTestJSON(&buf)
	if err != nil && o.Status == "" {
		o.Status = "vm-error"
	}
	if o.Status == "no-run" {
		o.Output += fmt.Sprintf("vmtest: no verdict in the output of %s (exit: %v; reading it: %v)\n", cmd, runErr, err)
	}
	if o.Elapsed == 0 {
		o.Elapsed = time.Since(start).Seconds()
	}
	return o
}

// queue hands out the matrix's jobs in order, with at most one host cell
// running at a time: host cells share the machine's kernel, whose locks
// and grace periods their tests wait on (attaching a tracepoint takes
// event_mutex, which closing syscount's ~330 perf events holds in turn):
// next to host syscount, host pkg/trace/tcp took 65 s, alone 7 s. A VM
// cell has a kernel of its own and runs next to anything. A worker skips
// past a host job while another runs, and waits only when nothing else is
// left.
type queue struct {
	mu       sync.Mutex
	cond     *sync.Cond
	jobs     []job
	hostBusy bool
}

func (q *queue) next() (job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.jobs) > 0 {
		for i, j := range q.jobs {
			if j.kernel == "host" && q.hostBusy {
				continue
			}
			q.jobs = slices.Delete(q.jobs, i, i+1)
			if j.kernel == "host" {
				q.hostBusy = true
			}
			return j, true
		}
		q.cond.Wait()
	}
	return job{}, false
}

// done marks j finished.
func (q *queue) done(j job) {
	if j.kernel != "host" {
		return
	}
	q.mu.Lock()
	q.hostBusy = false
	q.mu.Unlock()
	q.cond.Broadcast()
}

// hostOnlyPackages returns, for each package of bins whose cells in VMs
// would test nothing that depends on the kernel, why
// (vmtest.HostOnlyReason): from what its test binary lists and from its
// test dependencies.
func hostOnlyPackages(ctx context.Context, root string, patterns []string, bins, dirs map[string]string) (map[string]string, error) {
	cmd := exec.CommandContext(ctx, "go", append([]string{"list", "-test", "-f", "{{.ImportPath}}\t{{join .Deps \" \"}}"}, patterns...)...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -test: %v\n%s", err, stderr.String())
	}
	linksBPF := map[string]bool{}
	for _, line := range strings.Split(string(outb), "\n") {
		path, deps, _ := strings.Cut(line, "\t")
		if p, ok := strings.CutSuffix(path, ".test"); ok {
			linksBPF[p] = slices.Contains(strings.Fields(deps), "github.com/cilium/ebpf")
		}
	}
	reasons := map[string]string{}
	for p, bin := range bins {
		list := exec.CommandContext(ctx, bin, "-test.list", ".")
		list.Dir = dirs[p]
		outb, err := list.Output()
		if err != nil {
			return nil, fmt.Errorf("%s -test.list: %v", p, err)
		}
		if r := vmtest.HostOnlyReason(strings.Fields(string(outb)), linksBPF[p]); r != "" {
			reasons[p] = r
		}
	}
	return reasons, nil
}

// testPackages lists the packages matching patterns that have test files,
// with their directories. vmtest's own packages are left out unless self.
func testPackages(ctx context.Context, root string, patterns []string, self bool) ([]string, map[string]string, error) {
	args := append([]string{"list", "-f", "{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}"}, patterns...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []string
	dirs := map[string]string{}
	self_ := vmtest.ModulePath + "/vmtest"
	for _, line := range strings.Split(strings.TrimSpace(string(outb)), "\n") {
		p, d, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if !self && (p == self_ || strings.HasPrefix(p, self_+"/")) && !strings.HasPrefix(p, self_+"/testdata/") {
			continue
		}
		pkgs = append(pkgs, p)
		dirs[p] = d
	}
	return pkgs, dirs, nil
}

func goBuild(ctx context.Context, root, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
