package vmtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bpfkit/bpfkit/vmtest/guest"
)

// Exit codes of Run besides the test's own.
const (
	ExitTimeout = guest.ExitTimeout // 124: the VM did not finish in time
	ExitInfra   = guest.ExitInfra   // 125: kernel panic, qemu failure, no status line
	ExitNoExec  = guest.ExitNoExec  // 126: the test binary could not be run
)

// Options configures one VM run.
type Options struct {
	Kernel  *Kernel
	Binary  string   // host path of the (static) test binary
	Args    []string // arguments for the binary
	Env     []string // environment for the binary (see GuestEnv)
	Dir     string   // working directory in the guest; the host dir of the same name is copied
	Files   []string // extra host files made available at the same path
	Modules []string // kernel modules to load (with dependencies)
	Init    string   // static init binary; "" = FindInit
	Qemu    string   // qemu binary, default qemu-system-x86_64
	Accel   string   // "" = Accel()
	Memory  string   // default 1G
	CPUs    int      // default 2
	Timeout time.Duration
	Cmdline string // extra kernel command line
	Verbose bool   // copy the kernel console to Stderr
	Stdout  io.Writer
	Stderr  io.Writer
}

func (o *Options) logf(format string, args ...any) {
	fmt.Fprintf(o.Stderr, "vmrun: "+format+"\n", args...)
}

// Result describes a finished run.
type Result struct {
	Code     int           // exit code: the test's, or ExitTimeout/ExitInfra/ExitNoExec
	Duration time.Duration // qemu start to exit
	Console  string        // kernel console output
}

// Run boots the kernel with the test binary in an initramfs, runs it and
// returns its exit code. Errors that prevent the VM from running are reported
// on Stderr and result in ExitInfra or ExitNoExec.
func Run(ctx context.Context, o Options) Result {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	res, err := run(ctx, &o)
	if err != nil {
		o.logf("%v", err)
	}
	// A kernel that stopped before its init started the test ran no test:
	// under TCG a guest kernel now and then panics while it boots (seen
	// once on 6.12, in setup_IO_APIC). Boot it once more; a test that
	// started is never run twice.
	if res.Code == ExitInfra && ctx.Err() == nil && res.Console != "" && !strings.Contains(res.Console, guest.StartedMarker) {
		o.logf("the VM (kernel %s) stopped before the test started: booting it once more", o.Kernel.Release)
		if res, err = run(ctx, &o); err != nil {
			o.logf("%v", err)
		}
	}
	return res
}

func run(ctx context.Context, o *Options) (Result, error) {
	if o.Qemu == "" {
		o.Qemu = "qemu-system-x86_64"
	}
	if o.Memory == "" {
		o.Memory = "1G"
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.Accel == "" {
		o.Accel = Accel()
	}
	if o.Kernel == nil {
		return Result{Code: ExitInfra}, errors.New("no kernel")
	}
	if o.Binary != "" {
		static, err := IsStatic(o.Binary)
		if err != nil {
			return Result{Code: ExitNoExec}, fmt.Errorf("%s: %v", o.Binary, err)
		}
		if !static {
			return Result{Code: ExitNoExec}, fmt.Errorf("%s is dynamically linked; build it with CGO_ENABLED=0", o.Binary)
		}
	}
	if o.Init == "" {
		init, err := FindInit(ctx)
		if err != nil {
			return Result{Code: ExitInfra}, err
		}
		o.Init = init
	}
	qemu, err := exec.LookPath(o.Qemu)
	if err != nil {
		return Result{Code: ExitInfra}, fmt.Errorf("%s not found (apt-get install qemu-system-x86): %v", o.Qemu, err)
	}

	tmp, err := os.MkdirTemp("", "vmtest-")
	if err != nil {
		return Result{Code: ExitInfra}, err
	}
	defer os.RemoveAll(tmp)

	var nonce [8]byte
	rand.Read(nonce[:])
	spec := &InitramfsSpec{
		Init:     o.Init,
		Binary:   o.Binary,
		Kernel:   o.Kernel,
		Modules:  o.Modules,
		Files:    o.Files,
		Warnings: func(s string) { o.logf("%s", s) },
		Config: guest.Config{
			Env:    guest.Environ(o.Env),
			Dir:    o.Dir,
			Output: "/dev/ttyS1",
			Nonce:  hex.EncodeToString(nonce[:]),
		},
	}
	if o.Binary != "" {
		spec.Config.Args = append([]string{spec.GuestBinary()}, o.Args...)
	}
	if o.Dir != "" && isDir(o.Dir) {
		spec.Dirs = []string{o.Dir}
	}
	initrd := filepath.Join(tmp, "initramfs.cpio")
	if err := WriteInitramfs(initrd, spec); err != nil {
		return Result{Code: ExitInfra}, fmt.Errorf("initramfs: %v", err)
	}

	q := &QemuConfig{
		Binary:  qemu,
		Accel:   o.Accel,
		Memory:  o.Memory,
		CPUs:    o.CPUs,
		Kernel:  o.Kernel.Image,
		Initrd:  initrd,
		Cmdline: strings.TrimSpace(DefaultCmdline + " " + o.Cmdline),
		Console: filepath.Join(tmp, "console.log"),
	}
	if o.Verbose {
		o.logf("%s", q)
	}

	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	cmd := exec.Command(q.Binary, q.Args()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var qstderr bytes.Buffer
	cmd.Stderr = &qstderr
	// A plain pipe (not StdoutPipe): Wait must not close our end before all
	// output has been read.
	stdout, pw, err := os.Pipe()
	if err != nil {
		return Result{Code: ExitInfra}, err
	}
	defer stdout.Close()
	cmd.Stdout = pw
	start := time.Now()
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return Result{Code: ExitInfra}, fmt.Errorf("start qemu: %v", err)
	}
	type status struct {
		code int
		ok   bool
	}
	statusc := make(chan status, 1)
	go func() {
		code, ok, _ := OutputFilter(stdout, o.Stdout, spec.Config.Nonce)
		statusc <- status{code, ok}
	}()
	waitc := make(chan error, 1)
	go func() { waitc <- cmd.Wait() }()

	var (
		st       status
		gotSt    bool
		exited   bool
		waitErr  error
		timedOut bool
	)
	for !exited {
		var grace <-chan time.Time
		if gotSt {
			grace = time.After(15 * time.Second)
		}
		select {
		case st = <-statusc:
			gotSt = true
			statusc = nil
		case waitErr = <-waitc:
			exited = true
		case <-ctx.Done():
			timedOut = true
			cmd.Process.Kill()
			waitErr = <-waitc
			exited = true
		case <-grace:
			// Status received but the guest did not power off.
			cmd.Process.Kill()
			waitErr = <-waitc
			exited = true
		}
	}
	if !gotSt && !timedOut {
		// qemu exited; the output goroutine finishes at EOF.
		select {
		case st = <-statusc:
			gotSt = true
		case <-time.After(5 * time.Second):
		}
	}
	res := Result{Duration: time.Since(start)}
	if b, err := os.ReadFile(q.Console); err == nil {
		res.Console = string(b)
	}
	var rerr error
	switch {
	case gotSt && st.ok:
		res.Code = st.code
	case timedOut && ctx.Err() == context.Canceled:
		res.Code = ExitInfra
		rerr = fmt.Errorf("interrupted: VM (kernel %s) killed", o.Kernel.Release)
	case timedOut:
		res.Code = ExitTimeout
		rerr = fmt.Errorf("timeout: VM (kernel %s) did not finish within %v", o.Kernel.Release, o.Timeout)
	default:
		res.Code = ExitInfra
		rerr = fmt.Errorf("VM (kernel %s) stopped without reporting an exit status (qemu: %v)", o.Kernel.Release, waitErr)
	}
	if rerr != nil {
		o.logf("%v", rerr)
	}
	showConsole := o.Verbose || rerr != nil || res.Code == ExitNoExec || strings.Contains(res.Console, "Call Trace:")
	if showConsole {
		if s := strings.TrimSpace(qstderr.String()); s != "" {
			o.logf("qemu stderr:\n%s", s)
		}
		o.logf("kernel console (%s):\n%s", o.Kernel.Release, tail(res.Console, 60))
	}
	return res, nil
}

func tail(s string, lines int) string {
	s = strings.TrimRight(s, "\n")
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = append([]string{"[...]"}, parts[len(parts)-lines:]...)
	}
	return strings.Join(parts, "\n")
}

// GuestEnv selects the variables passed into the guest: CI, BPFKIT_*,
// GOTRACEBACK, GODEBUG, and any name listed in $VMTEST_ENV (comma separated).
func GuestEnv(environ []string) []string {
	extra := map[string]bool{"CI": true, "GOTRACEBACK": true, "GODEBUG": true}
	for _, n := range strings.Split(os.Getenv("VMTEST_ENV"), ",") {
		if n = strings.TrimSpace(n); n != "" {
			extra[n] = true
		}
	}
	var env []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if extra[k] || strings.HasPrefix(k, "BPFKIT_") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME=/root", "USER=root", "TMPDIR=/tmp", "TERM=dumb")
}

// EnvFiles returns the values of env that are absolute paths of existing
// regular files (e.g. BPFKIT_BIN=/path/bpfkit); they are copied into the
// guest so tests can run them.
func EnvFiles(env []string) []string {
	var files []string
	for _, kv := range env {
		_, v, _ := strings.Cut(kv, "=")
		if filepath.IsAbs(v) && isFile(v) {
			files = append(files, v)
		}
	}
	return files
}

// FindInit returns a static vminit binary: $VMTEST_INIT, vminit next to the
// running executable, or one built from source into the cache.
func FindInit(ctx context.Context) (string, error) {
	if p := os.Getenv("VMTEST_INIT"); p != "" {
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "vminit")
		if isFile(p) {
			if ok, _ := IsStatic(p); ok {
				return p, nil
			}
		}
	}
	root := ModuleRoot()
	if root == "" {
		return "", errors.New("cannot find vminit: set VMTEST_INIT or run inside the bpfkit module")
	}
	dir := filepath.Join(DefaultCacheDir(), "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "vminit-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp.Name(), "./vmtest/cmd/vminit")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("go build vminit: %v\n%s", err, out)
	}
	p := filepath.Join(dir, "vminit")
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", err
	}
	return p, nil
}
