// Command progstats runs a command and prints the time the BPF programs of
// another process (a tracer) spent in the kernel meanwhile, from the
// kernel's own run-time statistics, enabled only while it runs.
//
// Usage: progstats TRACER_PID N CMD [ARGS...]
// Prints: "<BPF ns per unit of N> <program runs>".
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "progstats: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) < 4 {
		return fmt.Errorf("usage: progstats TRACER_PID N CMD [ARGS...]")
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n <= 0 {
		return fmt.Errorf("the count %q: want a positive number", os.Args[2])
	}
	progs, err := tracerPrograms(os.Args[1])
	if err != nil {
		return err
	}
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return fmt.Errorf("enable BPF run-time statistics: %w", err)
	}
	defer stats.Close()
	before, err := total(progs)
	if err != nil {
		return err
	}
	cmd := exec.Command(os.Args[3], os.Args[4:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return err
	}
	after, err := total(progs)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d %d\n", (after.Runtime-before.Runtime).Nanoseconds()/int64(n), after.RunCount-before.RunCount)
	return nil
}

// tracerPrograms opens the BPF programs that process pid holds.
func tracerPrograms(pid string) ([]*ebpf.Program, error) {
	paths, err := filepath.Glob(filepath.Join("/proc", pid, "fdinfo", "*"))
	if err != nil || len(paths) == 0 {
		return nil, fmt.Errorf("read the descriptors of process %s: %v", pid, err)
	}
	seen := map[uint64]bool{}
	var progs []*ebpf.Program
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		s := bufio.NewScanner(f)
		for s.Scan() {
			v, ok := strings.CutPrefix(s.Text(), "prog_id:")
			if !ok {
				continue
			}
			id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil || seen[id] {
				continue
			}
			seen[id] = true
			prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
			if err == nil {
				progs = append(progs, prog)
			}
		}
		f.Close()
	}
	if len(progs) == 0 {
		return nil, fmt.Errorf("process %s holds no BPF program", pid)
	}
	return progs, nil
}

func total(progs []*ebpf.Program) (ebpf.ProgramStats, error) {
	var sum ebpf.ProgramStats
	for _, p := range progs {
		st, err := p.Stats()
		if err != nil {
			return sum, fmt.Errorf("read statistics of program %v: %w", p, err)
		}
		sum.Runtime += st.Runtime
		sum.RunCount += st.RunCount
	}
	return sum, nil
}
