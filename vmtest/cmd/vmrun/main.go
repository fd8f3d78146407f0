// Command vmrun runs a Go test binary inside a qemu VM booting a given
// kernel. It is meant for go test -exec:
//
//	CGO_ENABLED=0 go test -exec 'vmrun -kernel 6.1' ./pkg/...
//
// vmrun [flags] BINARY [ARGS...]
//
// The exit status is the binary's, or 124 (timeout), 125 (VM failure: kernel
// panic, no status line, qemu error) or 126 (binary could not run).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/bpfkit/bpfkit/vmtest"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var (
		kernel  = flag.String("kernel", os.Getenv("VMTEST_KERNEL"), "kernel: version prefix (6.1), unpacked package dir, vmlinuz path, or \"host\" to run directly ($VMTEST_KERNEL)")
		runner  = flag.String("runner", envOr("VMTEST_RUNNER", "qemu"), "qemu (built-in) or vng (virtme-ng) ($VMTEST_RUNNER)")
		timeout = flag.Duration("timeout", 0, "VM timeout (default: -test.timeout + 2m)")
		memory  = flag.String("memory", envOr("VMTEST_MEMORY", "1G"), "guest memory")
		cpus    = flag.Int("cpus", 2, "guest vCPUs")
		modules = flag.String("modules", envOr("VMTEST_MODULES", strings.Join(vmtest.DefaultModules, ",")), "kernel modules to load, comma separated ($VMTEST_MODULES)")
		accel   = flag.String("accel", "", "qemu accelerator kvm|tcg (default: probe; $VMTEST_ACCEL)")
		cmdline = flag.String("append", os.Getenv("VMTEST_APPEND"), "extra kernel command line ($VMTEST_APPEND)")
		initBin = flag.String("init", "", "static guest init (default: vminit next to vmrun, $VMTEST_INIT, or built from source)")
		cache   = flag.String("cache", "", "cache directory (default: .vmtest at the module root, $VMTEST_CACHE)")
		verbose = flag.Bool("v", os.Getenv("VMTEST_VERBOSE") == "1", "print the qemu command and kernel console ($VMTEST_VERBOSE=1)")
		include listFlag
		envs    listFlag
	)
	flag.Var(&include, "include", "extra host `file` to copy into the guest at the same path (repeatable)")
	flag.Var(&envs, "env", "extra `KEY=VALUE` for the guest (repeatable)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: vmrun [flags] BINARY [ARGS...]\n\nRuns BINARY as root in a VM (PID 1 is vmtest's init).\nPassed into the guest: CI, BPFKIT_*, GOTRACEBACK, GODEBUG, names in $VMTEST_ENV.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 || *kernel == "" {
		flag.Usage()
		os.Exit(2)
	}
	bin, args := flag.Arg(0), flag.Args()[1:]
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *kernel == "host" {
		os.Exit(runHost(ctx, bin, args))
	}

	c := vmtest.NewCache(*cache)
	k, err := c.Resolve(ctx, *kernel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vmrun: kernel %s: %v\n", *kernel, err)
		os.Exit(vmtest.ExitInfra)
	}
	env := vmtest.GuestEnv(os.Environ())
	env = append(env, envs...)
	wd, _ := os.Getwd()
	to := *timeout
	if to == 0 {
		to = vmtest.TestTimeout(args)
	}

	// Tests may widen timing margins under emulation (testkit.Emulated).
	guestAccel := *accel
	if guestAccel == "" {
		guestAccel = vmtest.Accel()
	}
	env = append(env, "BPFKIT_VM_ACCEL="+guestAccel)

	if *runner == "vng" {
		os.Exit(runVng(ctx, c, k, vmtest.VngConfig{
			Image: k.Image, Dir: wd, Env: env, Memory: *memory, CPUs: *cpus,
			Flags: vngFlags(guestAccel, *verbose), Binary: bin, Args: args,
			Modules: splitList(*modules),
		}, to))
	}
	if *runner != "qemu" {
		fmt.Fprintf(os.Stderr, "vmrun: unknown runner %q\n", *runner)
		os.Exit(2)
	}

	files := append(vmtest.EnvFiles(env), include...)
	res := vmtest.Run(ctx, vmtest.Options{
		Kernel:  k,
		Binary:  bin,
		Args:    args,
		Env:     env,
		Dir:     wd,
		Files:   files,
		Modules: splitList(*modules),
		Init:    *initBin,
		Accel:   *accel,
		Memory:  *memory,
		CPUs:    *cpus,
		Timeout: to,
		Cmdline: *cmdline,
		Verbose: *verbose,
	})
	if *verbose {
		fmt.Fprintf(os.Stderr, "vmrun: kernel %s exit %d after %.1fs\n", k.Release, res.Code, res.Duration.Seconds())
	}
	os.Exit(res.Code)
}

func runHost(ctx context.Context, bin string, args []string) int {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "vmrun: %v\n", err)
		return vmtest.ExitNoExec
	}
	return 0
}

func vngFlags(accel string, verbose bool) []string {
	flags := vmtest.VngFlags(accel)
	if verbose {
		flags = append(flags, "--verbose")
	}
	return flags
}

// runVng runs the binary through virtme-ng after making the kernel usable
// for it (depmod) and finding it a virtiofsd (see vmtest.VirtiofsdDir).
func runVng(ctx context.Context, c *vmtest.Cache, k *vmtest.Kernel, vc vmtest.VngConfig, to time.Duration) int {
	if _, err := exec.LookPath("vng"); err != nil {
		fmt.Fprintln(os.Stderr, "vmrun: vng not found: run `make vmtest-vng` (installs Debian's virtme-ng)")
		return vmtest.ExitInfra
	}
	if static, err := vmtest.IsStatic(vc.Binary); err != nil || !static {
		fmt.Fprintf(os.Stderr, "vmrun: %s is not a static binary (%v); build it with CGO_ENABLED=0\n", vc.Binary, err)
		return vmtest.ExitNoExec
	}
	if err := c.Depmod(ctx, k); err != nil {
		fmt.Fprintf(os.Stderr, "vmrun: %v\n", err)
		return vmtest.ExitInfra
	}
	vfsDir, err := c.VirtiofsdDir(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vmrun: virtiofsd for vng: %v\n", err)
		return vmtest.ExitInfra
	}
	argv := vc.Argv()
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if vfsDir != "" {
		cmd.Env = append(os.Environ(), "PATH="+vfsDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	// vng starts virtme-run, virtiofsd and qemu below it: on a timeout or an
	// interrupt, kill them all (its own process group), not only vng.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	err = cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		fmt.Fprintf(os.Stderr, "vmrun: timeout: vng (kernel %s) did not finish within %v\n", k.Release, to)
		return vmtest.ExitTimeout
	}
	if vc.Flags != nil && slices.Contains(vc.Flags, "--verbose") {
		fmt.Fprintf(os.Stderr, "vmrun: kernel %s (vng) finished after %.1fs\n", k.Release, time.Since(start).Seconds())
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "vmrun: %v\n", err)
		return vmtest.ExitInfra
	}
	return 0
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
