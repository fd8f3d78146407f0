package vmtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// VngConfig describes one run of a binary in a virtme-ng VM. vng shares the
// host's filesystem with the guest (virtiofs), so Binary and Dir are host
// paths, and the binary must be static (the guest's C library is the host's,
// but a static binary needs none).
type VngConfig struct {
	Image  string   // kernel image (vmlinuz)
	Dir    string   // working directory in the guest
	Env    []string // environment of the binary
	Memory string   // guest memory, e.g. "1G"; "" = vng's default
	CPUs   int      // guest vCPUs; 0 = vng's default
	Flags  []string // extra vng flags (VngFlags)
	Binary string
	Args   []string
	// Modules are loaded (modprobe, from the kernel's own module tree
	// that vng links into the guest) before the binary runs, as the
	// qemu runner loads them: /dev/loop-control, for one, appears only
	// once loop is loaded.
	Modules []string
}

// Argv returns the command line, starting with "vng", that runs the binary
// as root. vng's own init does not mount bpffs; bpfkit mounts /sys/fs/bpf
// itself when it is missing.
func (c VngConfig) Argv() []string {
	cmd := []string{"vng", "--run", c.Image, "--user", "root"}
	if c.Dir != "" {
		cmd = append(cmd, "--cwd", c.Dir)
	}
	if c.Memory != "" {
		cmd = append(cmd, "--memory", c.Memory)
	}
	if c.CPUs > 0 {
		cmd = append(cmd, "--cpus", strconv.Itoa(c.CPUs))
	}
	cmd = append(cmd, c.Flags...)
	cmd = append(cmd, "--", "env")
	cmd = append(cmd, c.Env...)
	script := vngCopy
	if len(c.Modules) > 0 {
		// A module the kernel lacks or has built in is no error.
		script = "modprobe -qa " + strings.Join(c.Modules, " ") + " 2>/dev/null; " + script
	}
	cmd = append(cmd, "/bin/sh", "-c", script, c.Binary)
	return append(cmd, c.Args...)
}

// vngCopy is the guest's last step: copy the binary into the guest's own
// /tmp (a tmpfs) and run it from there. Executing it where it lies, over
// virtiofs, takes about 230 ms an exec under TCG, and the tests execute
// their own binary (os.Executable) thousands of times.
const vngCopy = `cp "$0" /tmp/vmtest.bin && exec /tmp/vmtest.bin "$@"`

const vngSingleThread = "--qemu-opts=-accel tcg,thread=single"

// VngFlags returns the extra vng flags: $VMTEST_VNG_FLAGS, plus, unless
// accel (see Accel) is kvm, --disable-kvm (vng would otherwise ask qemu for
// KVM and fail where it is unusable) and single-threaded TCG, as the qemu
// runner uses (qemu.go): with qemu's default, one thread per vCPU, a vng
// guest hung for good here (the 6.1 cell of a CI run, 12 minutes with no
// output, the test's own 10-minute timeout never firing).
func VngFlags(accel string) []string {
	flags := strings.Fields(os.Getenv("VMTEST_VNG_FLAGS"))
	if accel == "kvm" {
		return flags
	}
	if !slices.Contains(flags, "--disable-kvm") {
		flags = append(flags, "--disable-kvm")
	}
	if !slices.ContainsFunc(flags, func(f string) bool { return strings.Contains(f, "thread=") }) {
		flags = append(flags, vngSingleThread)
	}
	return flags
}

// DepmodBase returns the directory depmod -b needs for a module directory
// BASE/lib/modules/RELEASE: Debian's older packages put modules in
// lib/modules, newer ones in usr/lib/modules (then BASE ends in /usr, as
// vng's own lookup of the kernel's root does).
func DepmodBase(modDir, release string) (string, error) {
	suffix := filepath.Join("lib/modules", release)
	clean := filepath.Clean(modDir)
	if release == "" || !strings.HasSuffix(clean, "/"+suffix) {
		return "", fmt.Errorf("module directory %s is not BASE/%s", modDir, suffix)
	}
	return strings.TrimSuffix(clean, "/"+suffix), nil
}

// Depmod writes depmod's output (modules.dep, modules.alias, ...) for the
// kernel's modules. Debian's packages do not ship it (the postinst runs
// depmod); vng needs it to find the virtiofs and virtio modules for its
// initramfs (modprobe --show-depends), and the guest's modprobe needs it to
// load modules on demand (e.g. veth when a test creates a veth pair). It
// runs once per kernel, under the cache lock: parallel vng runs must not
// race on the files.
func (c *Cache) Depmod(ctx context.Context, k *Kernel) error {
	if k.ModDir == "" || isFile(filepath.Join(k.ModDir, "modules.dep.bin")) {
		return nil
	}
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if isFile(filepath.Join(k.ModDir, "modules.dep.bin")) {
		return nil
	}
	return Depmod(ctx, k.ModDir, k.Release)
}

// Depmod runs the host's depmod (kmod) on the module directory of release.
func Depmod(ctx context.Context, modDir, release string) error {
	base, err := DepmodBase(modDir, release)
	if err != nil {
		return err
	}
	depmod, err := lookSbin("depmod")
	if err != nil {
		return fmt.Errorf("depmod not found (apt-get install kmod): %v", err)
	}
	if out, err := exec.CommandContext(ctx, depmod, "-b", base, release).CombinedOutput(); err != nil {
		return fmt.Errorf("depmod -b %s %s: %v\n%s", base, release, err, out)
	}
	if !isFile(filepath.Join(modDir, "modules.dep.bin")) {
		return fmt.Errorf("depmod -b %s %s wrote no %s/modules.dep.bin", base, release, modDir)
	}
	return nil
}

// lookSbin finds a tool in $PATH or in the sbin directories a non-root
// $PATH often lacks.
func lookSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, name); isFile(p) {
			return p, nil
		}
	}
	return exec.LookPath(name)
}

// VirtiofsdSuite is the Debian suite whose virtiofsd vmtest unpacks for vng,
// with the libraries it links (their own C library: trixie's virtiofsd needs
// glibc 2.39, bookworm has 2.36).
const VirtiofsdSuite = "trixie"

// virtiofsdDebs are the packages of VirtiofsdSuite unpacked for virtiofsd:
// the daemon and what it links (ldd: libc, libcap-ng, libseccomp, libgcc_s).
var virtiofsdDebs = []string{"virtiofsd", "libc6", "libcap-ng0", "libseccomp2", "libgcc-s1"}

// HostVirtiofsd returns the host's Rust virtiofsd (Debian's package puts it
// in /usr/libexec), or "". qemu's older C daemon (/usr/lib/qemu/virtiofsd on
// bookworm) does not count: vng starts it with the Rust daemon's options,
// it exits, and vng falls back to 9p, which the -cloud-amd64 kernels lack.
func HostVirtiofsd() string {
	cands := []string{"/usr/libexec/virtiofsd", "/usr/lib/virtiofsd/virtiofsd"}
	if p, err := exec.LookPath("virtiofsd"); err == nil {
		cands = append([]string{p}, cands...)
	}
	for _, p := range cands {
		if out, err := exec.Command(p, "--version").Output(); err == nil && isRustVirtiofsd(string(out)) {
			return p
		}
	}
	return ""
}

// isRustVirtiofsd tells the Rust daemon's --version ("virtiofsd 1.13.2")
// from qemu's C one ("virtiofsd version 7.2.22 (Debian ...)").
func isRustVirtiofsd(version string) bool {
	f := strings.Fields(version)
	return len(f) >= 2 && f[0] == "virtiofsd" && f[1] != "version"
}

// VirtiofsdDir returns a directory to put first in vng's $PATH so that it
// finds a virtiofsd it can use: "" if the host has one (HostVirtiofsd), else
// CACHE/virtiofsd/bin, whose virtiofsd is a script that runs Debian's
// daemon (VirtiofsdSuite) through the dynamic loader unpacked with it, so
// the host's own C library is neither used nor touched. The packages are
// downloaded once.
func (c *Cache) VirtiofsdDir(ctx context.Context) (string, error) {
	if HostVirtiofsd() != "" {
		return "", nil
	}
	root := filepath.Join(c.Dir, "virtiofsd")
	bin := filepath.Join(root, "bin")
	if isFile(filepath.Join(root, markerFile)) {
		return bin, nil
	}
	unlock, err := c.lock()
	if err != nil {
		return "", err
	}
	defer unlock()
	if isFile(filepath.Join(root, markerFile)) {
		return bin, nil
	}
	apt, err := c.apt(ctx, false)
	if err != nil {
		return "", err
	}
	var pkgs []string
	for _, p := range virtiofsdDebs {
		pkgs = append(pkgs, p+"/"+VirtiofsdSuite)
	}
	c.logf("fetching virtiofsd for vng (%s)", strings.Join(pkgs, " "))
	tmp := root + ".tmp"
	if err := c.unpackDebs(ctx, apt, pkgs, tmp); err != nil {
		return "", err
	}
	os.RemoveAll(filepath.Join(tmp, "usr/share"))
	if err := os.MkdirAll(filepath.Join(tmp, "bin"), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, "bin", "virtiofsd"), []byte(virtiofsdScript(root)), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, markerFile), []byte(strings.Join(pkgs, "\n")+"\n"), 0o644); err != nil {
		return "", err
	}
	os.RemoveAll(root)
	if err := os.Rename(tmp, root); err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "virtiofsd"), "--version").CombinedOutput()
	if err != nil || !isRustVirtiofsd(string(out)) {
		return "", fmt.Errorf("unpacked virtiofsd does not run: %v: %s", err, out)
	}
	c.logf("%s ready in %s", strings.TrimSpace(string(out)), bin)
	return bin, nil
}

// virtiofsdScript is the virtiofsd wrapper for an unpacked tree in root.
func virtiofsdScript(root string) string {
	lib := filepath.Join(root, "usr/lib/x86_64-linux-gnu")
	return "#!/bin/sh\n" +
		"# Written by vmtest: Debian " + VirtiofsdSuite + "'s virtiofsd with its own C library.\n" +
		"exec " + shellQuote(filepath.Join(lib, "ld-linux-x86-64.so.2")) + " --library-path " + shellQuote(lib) + " " +
		shellQuote(filepath.Join(root, "usr/libexec/virtiofsd")) + ` "$@"` + "\n"
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// TestTimeout returns the VM timeout for a test binary invoked with args:
// the binary's -test.timeout plus a margin for booting, 10m+2m if not given,
// 1h if the test timeout is disabled (0).
func TestTimeout(args []string) time.Duration {
	const margin = 2 * time.Minute
	d := 10 * time.Minute
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		var v string
		switch {
		case strings.HasPrefix(a, "test.timeout="):
			v = strings.TrimPrefix(a, "test.timeout=")
		case a == "test.timeout" && i+1 < len(args):
			v = args[i+1]
		default:
			continue
		}
		if t, err := time.ParseDuration(v); err == nil {
			d = t
		}
	}
	if d == 0 {
		return time.Hour
	}
	return d + margin
}

// VngPackage is Debian's package of virtme-ng; bookworm has none, trixie
// and sid do. It is architecture-independent Python whose dependencies
// bookworm has.
const VngPackage = "virtme-ng"

// DownloadDeb downloads the newest pkg in Suites into dir and returns the
// file's path.
func (c *Cache) DownloadDeb(ctx context.Context, pkg, dir string) (string, error) {
	apt, err := c.apt(ctx, false)
	if err != nil {
		return "", err
	}
	if _, err := apt.run(ctx, dir, "apt-get", "download", pkg); err != nil {
		return "", err
	}
	files, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(files) != 1 {
		return "", fmt.Errorf("apt-get download %s: got %d files", pkg, len(files))
	}
	return files[0], nil
}

// HostUdevd reports whether systemd-udevd is installed. virtme-ng's init
// runs the host's udevd in the guest to create /dev/virtio-ports/*, the
// channels of the command's stdin, stdout, stderr and exit status; without
// it vng prints nothing and exits 255.
func HostUdevd() bool {
	return isFile("/usr/lib/systemd/systemd-udevd") || isFile("/lib/systemd/systemd-udevd")
}
