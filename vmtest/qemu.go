package vmtest

import (
	"fmt"
	"os"
	"strings"
)

// Accel returns the qemu accelerator to use: $VMTEST_ACCEL if set, "kvm" if
// a hardware KVM module (kvm_intel / kvm_amd) is loaded and /dev/kvm can be
// opened, else "tcg". /dev/kvm alone is not enough: on nested PVM hosts it
// exists but qemu cannot use it.
func Accel() string {
	if a := os.Getenv("VMTEST_ACCEL"); a != "" {
		return a
	}
	return probeAccel("/sys/module", "/dev/kvm")
}

func probeAccel(sysModule, devKVM string) string {
	hw := isDir(sysModule+"/kvm_intel") || isDir(sysModule+"/kvm_amd")
	if !hw {
		return "tcg"
	}
	f, err := os.OpenFile(devKVM, os.O_RDWR, 0)
	if err != nil {
		return "tcg"
	}
	f.Close()
	return "kvm"
}

// QemuConfig describes one VM.
type QemuConfig struct {
	Binary  string // qemu-system-x86_64
	Accel   string // "kvm" or "tcg"
	Memory  string // e.g. "1G"
	CPUs    int
	Kernel  string
	Initrd  string
	Cmdline string
	Console string // host file receiving ttyS0 (kernel console)
}

// DefaultCmdline is the kernel command line; ttyS0 is the console, ttyS1
// carries the test's output.
const DefaultCmdline = "console=ttyS0,115200 panic=-1 rdinit=/init quiet loglevel=4 random.trust_cpu=on"

// Args returns qemu's command line (without the binary). The test output
// port (ttyS1) is qemu's stdout.
func (q *QemuConfig) Args() []string {
	args := []string{
		"-nodefaults", "-no-user-config", "-no-reboot",
		"-display", "none", "-vga", "none",
		"-machine", "q35",
		"-m", q.Memory,
		"-smp", fmt.Sprint(max(q.CPUs, 1)),
	}
	switch q.Accel {
	case "kvm":
		args = append(args, "-accel", "kvm", "-cpu", "host")
	default:
		// thread=multi with 2 vCPUs panicked guests on nested hosts.
		args = append(args, "-accel", "tcg,thread=single", "-cpu", "max")
	}
	args = append(args,
		"-kernel", q.Kernel,
		"-initrd", q.Initrd,
		"-append", q.Cmdline,
		"-chardev", "file,id=con,path="+q.Console,
		"-serial", "chardev:con",
		"-chardev", "stdio,id=out,signal=off",
		"-serial", "chardev:out",
		"-device", "virtio-rng-pci",
	)
	return args
}

func (q *QemuConfig) String() string {
	return q.Binary + " " + strings.Join(q.Args(), " ")
}
