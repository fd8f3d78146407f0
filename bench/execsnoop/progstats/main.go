// Command progstats runs a command and prints the time the BPF programs of
// another process (a tracer) spent in the kernel meanwhile, from the
// kernel's own run-time statistics, enabled only while it runs.
//
// Usage: progstats [-hook REGEX] TRACER_PID[,TRACER_PID...] N CMD [ARGS...]
// Prints on stderr, for each tracer in the order given: "<BPF ns per unit
// of N> <program runs> <BPF ns in all> <runs of the programs whose name
// matches REGEX>" (all runs without -hook): the last two give the time per
// run of the tracer's program at one hook, every program of the tracer
// included in the time. Tracers measured together see the same events.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	hookFlag := flag.String("hook", "", "count the runs of the programs whose name matches this regular expression")
	flag.Parse()
	args := flag.Args()
	if len(args) < 3 {
		return fmt.Errorf("usage: progstats [-hook REGEX] TRACER_PID[,TRACER_PID...] N CMD [ARGS...]")
	}
	hook, err := regexp.Compile(*hookFlag)
	if err != nil {
		return fmt.Errorf("-hook: %w", err)
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n <= 0 {
		return fmt.Errorf("the count %q: want a positive number", args[1])
	}
	var tracers [][]*ebpf.Program
	for _, pid := range strings.Split(args[0], ",") {
		progs, err := tracerPrograms(pid)
		if err != nil {
			return err
		}
		tracers = append(tracers, progs)
	}
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return fmt.Errorf("enable BPF run-time statistics: %w", err)
	}
	defer stats.Close()
	before := make([]sum, len(tracers))
	for i, progs := range tracers {
		if before[i], err = total(progs, hook); err != nil {
			return err
		}
	}
	cmd := exec.Command(args[2], args[3:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return err
	}
	for i, progs := range tracers {
		after, err := total(progs, hook)
		if err != nil {
			return err
		}
		ns := (after.Runtime - before[i].Runtime).Nanoseconds()
		fmt.Fprintf(os.Stderr, "%d %d %d %d\n", ns/int64(n), after.RunCount-before[i].RunCount, ns, after.hookRuns-before[i].hookRuns)
	}
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

type sum struct {
	ebpf.ProgramStats
	hookRuns uint64 // runs of the programs whose name matches the hook
}

func total(progs []*ebpf.Program, hook *regexp.Regexp) (sum, error) {
	var s sum
	for _, p := range progs {
		st, err := p.Stats()
		if err != nil {
			return s, fmt.Errorf("read statistics of program %v: %w", p, err)
		}
		s.Runtime += st.Runtime
		s.RunCount += st.RunCount
		info, err := p.Info()
		if err != nil {
			return s, fmt.Errorf("read the name of program %v: %w", p, err)
		}
		if hook.MatchString(info.Name) {
			s.hookRuns += st.RunCount
		}
	}
	return s, nil
}
