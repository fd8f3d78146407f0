package vmtest

import (
	"fmt"
	"regexp"
	"strings"
)

// RunnerNote says which runner produced each column of a matrix, for the
// line above the compatibility table: every kernel column comes from runner
// (qemu: vmtest's own initramfs; vng: virtme-ng sharing the host's
// filesystem), under accelerator accel; the host column from no VM at all.
func RunnerNote(kernels []string, runner, accel string) string {
	var vms, host []string
	for _, k := range kernels {
		if k == "host" {
			host = append(host, "`host`")
		} else {
			vms = append(vms, "`"+k+"`")
		}
	}
	how := map[string]string{
		"qemu": "qemu, booting vmtest's own initramfs",
		"vng":  "virtme-ng (`vng --run`), the guest sharing the host's filesystem",
	}[runner]
	if how == "" {
		how = runner
	}
	var parts []string
	if len(vms) > 0 {
		parts = append(parts, fmt.Sprintf("%s: runner `%s` (%s; accelerator %s; tests named TestHost* left out)", strings.Join(vms, ", "), runner, how, accel))
	}
	if len(host) > 0 {
		parts = append(parts, "`host`: no VM (the tests run directly on the machine)")
	}
	if len(parts) == 0 {
		return ""
	}
	return "Columns: " + strings.Join(parts, "; ") + "."
}

// HostOnlyTests matches the tests that run in the host column only: named
// TestHost..., they need what only the host has (Debian's prometheus and
// systemd-analyze, the repository's files), not a particular kernel. In a
// VM they are left out with -test.skip, which is not a skip that CI=true
// turns into a failure, and the table's note says so.
const HostOnlyTests = "^TestHost"

var hostOnlyTests = regexp.MustCompile(HostOnlyTests)

// HostOnly is the status of a VM cell not run (HostOnlyReason).
const HostOnly = "host-only"

// HostOnlyReason says why a package's cells in VMs would test nothing that
// depends on the kernel, or returns "" when they run. tests is what its
// test binary lists (-test.list .); linksBPF, whether the binary links
// cilium/ebpf. Without it nothing in the tests loads a BPF program (pure
// Go: flags, output); and a package of benchmarks and TestHost* tests only
// runs nothing in a VM (-test.skip=HostOnlyTests, no -test.bench). The host
// column runs such packages in full.
func HostOnlyReason(tests []string, linksBPF bool) string {
	if !linksBPF {
		return "its tests do not link cilium/ebpf"
	}
	for _, t := range tests {
		if !strings.HasPrefix(t, "Benchmark") && !hostOnlyTests.MatchString(t) {
			return ""
		}
	}
	return "only benchmarks and TestHost* tests"
}
