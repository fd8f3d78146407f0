// Package guest is the PID-1 init that runs inside a vmtest VM.
//
// It must stay free of github.com/cilium/ebpf (and anything that reads
// /proc at package init), because /proc is not mounted when package init
// functions run.
package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ConfigPath is where the runner stores the Config inside the initramfs.
const ConfigPath = "/vmtest/config.json"

// Exit codes shared between guest and runner.
const (
	ExitTimeout = 124 // the VM did not finish in time
	ExitInfra   = 125 // the VM or init failed (panic, no status line)
	ExitNoExec  = 126 // the test binary could not be started
)

// Config tells the init what to run.
type Config struct {
	Args    []string `json:"args"`    // argv, Args[0] is the binary's path in the guest
	Env     []string `json:"env"`     // complete environment for the binary
	Dir     string   `json:"dir"`     // working directory
	Modules []string `json:"modules"` // kernel modules to load, in order
	Output  string   `json:"output"`  // device for the binary's stdout/stderr
	Nonce   string   `json:"nonce"`   // marks the status line
}

// StatusLine is the line the init writes to the output device when the binary
// has exited.
func StatusLine(nonce string, code int) string {
	return fmt.Sprintf("%s exit=%d\n", StatusPrefix(nonce), code)
}

// StatusPrefix is the part of the status line before the exit code.
func StatusPrefix(nonce string) string { return "VMTEST-STATUS-" + nonce + ":" }

type mountSpec struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

// No tmpfs on /tmp: the initramfs root is writable already, and the host
// paths copied into it (a package checked out under /tmp, files named by
// environment variables) must not be hidden.
var mounts = []mountSpec{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, ""},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, ""},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"bpf", "/sys/fs/bpf", "bpf", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "mode=0700"},
	{"tracefs", "/sys/kernel/tracing", "tracefs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"debugfs", "/sys/kernel/debug", "debugfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
}

// StartedMarker begins the console line the init writes right before it
// starts the test binary: a VM whose console lacks it failed before any
// test ran.
const StartedMarker = "vminit: starting "

// console is the kernel console (ttyS0); diagnostics of the init go there.
var console = os.Stderr

func logf(format string, args ...any) {
	fmt.Fprintf(console, "vminit: "+format+"\n", args...)
}

// Main runs the init. It never returns.
func Main() {
	if c, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		console = c
	}
	code := run()
	poweroff(code)
}

func run() int {
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			logf("mkdir %s: %v", m.target, err)
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			logf("mount %s on %s: %v", m.fstype, m.target, err)
		}
	}
	if c, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		console = c
	}
	_ = os.Symlink("/proc/self/fd", "/dev/fd")

	raw, err := os.ReadFile(ConfigPath)
	if err != nil {
		logf("read config: %v", err)
		return ExitInfra
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		logf("parse config: %v", err)
		return ExitInfra
	}

	out, err := os.OpenFile(cfg.Output, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		logf("open %s: %v", cfg.Output, err)
		return ExitInfra
	}
	if err := makeRaw(int(out.Fd())); err != nil {
		logf("raw mode %s: %v", cfg.Output, err)
	}
	code := runTest(&cfg, out)
	// The status line is the last thing written to the output device.
	if _, err := out.WriteString(StatusLine(cfg.Nonce, code)); err != nil {
		logf("write status: %v", err)
	}
	drain(int(out.Fd()))
	return code
}

func runTest(cfg *Config, out *os.File) int {
	if err := loopbackUp(); err != nil {
		logf("bring up lo: %v", err)
	}
	for _, m := range cfg.Modules {
		if err := loadModule(m); err != nil {
			logf("load module %s: %v", filepath.Base(m), err)
		}
	}
	if cfg.Dir != "" {
		_ = os.MkdirAll(cfg.Dir, 0o755)
	}
	if len(cfg.Args) == 0 {
		fmt.Fprintln(out, "vminit: nothing to run")
		return ExitNoExec
	}
	logf("%s%s", strings.TrimPrefix(StartedMarker, "vminit: "), filepath.Base(cfg.Args[0]))
	cmd := exec.Command(cfg.Args[0], cfg.Args[1:]...)
	cmd.Env = cfg.Env
	cmd.Dir = cfg.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(out, "vminit: cannot run %s: %v\n", cfg.Args[0], err)
		return ExitNoExec
	}
	err := cmd.Wait()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			fmt.Fprintf(out, "vminit: %s killed by signal %v\n", cfg.Args[0], ws.Signal())
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	fmt.Fprintf(out, "vminit: wait: %v\n", err)
	return ExitInfra
}

func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CRTSCTS
	t.Cflag |= unix.CS8 | unix.CLOCAL
	t.Cflag = (t.Cflag &^ unix.CBAUD) | unix.B115200
	t.Ispeed, t.Ospeed = unix.B115200, unix.B115200
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// drain waits until everything written to the tty has been sent.
func drain(fd int) {
	_ = unix.IoctlSetInt(fd, unix.TCSBRK, 1) // tcdrain
	time.Sleep(50 * time.Millisecond)
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

func poweroff(code int) {
	unix.Sync()
	if os.Getpid() != 1 {
		os.Exit(code)
	}
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		logf("power off: %v", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// Environ returns env with PATH set to a sane default if missing.
func Environ(env []string) []string {
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return env
		}
	}
	return append(env, "PATH=/vmtest/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}
