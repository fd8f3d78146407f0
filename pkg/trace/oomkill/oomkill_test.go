package oomkill_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/trace/oomkill"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// TestOOMKill: a child exceeds the limit of a memory cgroup the test made
// and is killed: exactly one report, naming it, its cgroup and the trigger
// (itself), as many reports as the kernel's own counters rose, and where the
// tracepoint has them its figures: exactly those the kernel's own trace
// event of the tracepoint renders, and those of its "Killed process" line.
func TestOOMKill(t *testing.T) {
	testkit.RequireRoot(t)
	tr, err := oomkill.New(oomkill.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	events := make(chan oomkill.Event, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := tr.Run(ctx, loader.StreamOptions{}, func(e *oomkill.Event) error {
			events <- *e
			return nil
		})
		done <- err
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	m := testkit.NewMemoryCgroup(t, loader.MemcgRoot, 48<<20)
	victims, kmsg := traceMarkVictim(t), kmsgFrom(t)
	vmstat := testkit.VMStat(t, "oom_kill")
	const scoreAdj = 123
	pid, tid := testkit.OOMHog(t, scoreAdj, func(pid int) { m.Add(t, pid) })
	kills, global := m.OOMKills(t), testkit.VMStat(t, "oom_kill")-vmstat
	if kills != 1 {
		t.Fatalf("the cgroup's oom_kill is %d, want 1", kills)
	}
	// Every kill of the machine meanwhile is reported (another test's
	// may be among them): wait for as many as /proc/vmstat counted.
	var mine []oomkill.Event
	for n := uint64(0); n < global; n++ {
		select {
		case e := <-events:
			t.Logf("%+v", e)
			if e.Cgroup == m.Rel || e.VictimCgroup == m.Rel {
				mine = append(mine, e)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d reports, but /proc/vmstat's oom_kill rose by %d", n, global)
		}
	}
	select {
	case e := <-events:
		t.Errorf("a report more than /proc/vmstat counted: %+v", e)
	case <-time.After(200 * time.Millisecond):
	}
	if len(mine) != 1 {
		t.Fatalf("%d reports for the test's cgroup, want 1: %+v", len(mine), mine)
	}
	e := mine[0]
	comm := testkit.OOMHogComm
	if e.PID != uint32(pid) || e.TGID != uint32(pid) || string(e.Comm) != comm {
		t.Errorf("victim %d/%d (%s), want %d (%s)", e.PID, e.TGID, e.Comm, pid, comm)
	}
	// The hog's own page fault hit the limit: it is the trigger too, on
	// the thread that faults (not its leader: pid and tid differ).
	if e.TriggerPID != uint32(pid) || e.TriggerTID != uint32(tid) || string(e.TriggerComm) != comm || e.Cgroup != m.Rel || e.VictimCgroup != m.Rel {
		t.Errorf("trigger %d/%d (%s) in %q, victim in %q; want %d/%d (%s) in %q", e.TriggerPID, e.TriggerTID, e.TriggerComm, e.Cgroup, e.VictimCgroup, pid, tid, comm, m.Rel)
	}
	format, err := os.ReadFile(filepath.Join(loader.TracefsPath, "events/oom/mark_victim/format"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Contains(string(format), "total_vm"); e.Figures != want {
		t.Fatalf("figures %v, but the tracepoint has them: %v", e.Figures, want)
	}
	// The kernel's own rendering of the same tracepoint (its trace event,
	// filled by the same code at the same call as the record the program
	// reads): the same figures exactly. The hog, its faulting thread in
	// the OOM killer and its leader in pause(2), changes no counter
	// between the two.
	var kernel map[string]string
	for _, v := range victims() {
		if v["pid"] == strconv.Itoa(pid) {
			kernel = v
		}
	}
	if kernel == nil {
		t.Fatalf("no oom:mark_victim trace event for pid %d", pid)
	}
	if !e.Figures {
		if len(kernel) != 1 {
			t.Errorf("the trace event has %v, but the program saw no figures", kernel)
		}
		return
	}
	for name, got := range map[string]string{
		"comm": comm, "total-vm": kB(e.TotalVM), "anon-rss": kB(e.AnonRSS), "file-rss": kB(e.FileRSS),
		"shmem-rss": kB(e.ShmemRSS), "pgtables": kB(e.PgTables), "uid": strconv.Itoa(int(e.UID)),
		"oom_score_adj": strconv.Itoa(int(e.OOMScoreAdj)),
	} {
		if kernel[name] != got {
			t.Errorf("%s %s, the kernel's trace event has %s (%v)", name, got, kernel[name], kernel)
		}
	}
	if e.OOMScoreAdj != scoreAdj || e.UID != 0 {
		t.Errorf("oom_score_adj %d uid %d, want %d and 0", e.OOMScoreAdj, e.UID, scoreAdj)
	}
	// The kernel's log line: total-vm and pgtables the same. Before 6.2 it
	// reads the RSS figures as the tracepoint does, from atomic counters
	// only the hog's thread updates: the same. Since 6.2 they are per-CPU
	// counters (percpu_counter): the tracepoint reads their global value,
	// which lags the exact sum by what each CPU holds back (less than the
	// batch, max(32, 2*CPUs) pages). The log line reads the global value
	// too (6.12.117, 6.18 here: the same figures), or the exact sum where
	// the kernel has "mm: Fix OOM killer inaccuracy on large many-core
	// systems" (2026, sent to the stable trees; 7.2 here: anon-rss 49044
	// kB against 49028, shmem-rss 4 against 0). The hog faults its pages on
	// CPU 0 alone and frees none: the line has the tracepoint's figure plus
	// what CPU 0 holds back, under one batch.
	logged := killedFigures(t, kmsg, pid)
	t.Logf("trace event %v; log line %v", kernel, logged)
	var heldBack uint64 // kB
	if testkit.KernelAtLeast(6, 2) {
		cpus := uint64(runtime.NumCPU())
		heldBack = (max(32, 2*cpus) - 1) * uint64(os.Getpagesize()>>10)
	}
	for _, f := range []struct {
		name string
		got  uint64
		lag  uint64 // how much less than the log line it may be
	}{
		{"total-vm", e.TotalVM >> 10, 0}, {"anon-rss", e.AnonRSS >> 10, heldBack},
		{"file-rss", e.FileRSS >> 10, heldBack}, {"shmem-rss", e.ShmemRSS >> 10, heldBack},
		{"pgtables", e.PgTables >> 10, 0},
	} {
		if want := logged[f.name]; f.got > want || want-f.got > f.lag {
			t.Errorf("%s %d kB, the kernel logged %d kB (up to %d kB more)", f.name, f.got, want, f.lag)
		}
	}
	if e.AnonRSS < 16<<20 {
		t.Errorf("anon RSS %d bytes: the hog did not fill the cgroup", e.AnonRSS)
	}
}

// kB is a size in bytes in kB, as the kernel prints it.
func kB(b uint64) string { return strconv.FormatUint(b>>10, 10) }

// traceMarkVictim turns on the oom:mark_victim trace event in a tracefs
// instance of its own; the returned function turns it off and returns
// each record the kernel rendered meanwhile, by field: pid, and where the
// tracepoint has them comm, total-vm, anon-rss, file-rss, shmem-rss, uid,
// pgtables and oom_score_adj (sizes in kB, without the unit).
func traceMarkVictim(t *testing.T) func() []map[string]string {
	t.Helper()
	if err := loader.EnsureTracefs(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(loader.TracefsPath, "instances", fmt.Sprintf("bpfkit-oomkill-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("tracefs instance: %v", err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	enable := filepath.Join(dir, "events/oom/mark_victim/enable")
	if err := os.WriteFile(enable, []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	return func() []map[string]string {
		t.Helper()
		if err := os.WriteFile(enable, []byte("0"), 0); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "trace"))
		if err != nil {
			t.Fatal(err)
		}
		var out []map[string]string
		for _, line := range strings.Split(string(b), "\n") {
			_, rec, ok := strings.Cut(line, " mark_victim: ")
			if !ok {
				continue
			}
			v := map[string]string{}
			for _, f := range strings.Fields(rec) {
				if k, val, ok := strings.Cut(strings.Replace(f, ":", "=", 1), "="); ok {
					v[k] = strings.TrimSuffix(val, "kB")
				}
			}
			out = append(out, v)
		}
		return out
	}
}

// kmsgFrom opens /dev/kmsg at its end: what it reads then is logged
// after this call. Closed when the test ends.
func kmsgFrom(t *testing.T) int {
	t.Helper()
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil {
		t.Fatal(err)
	}
	return fd
}

// killedFigures returns the figures (kB) of the kernel log's "Killed
// process PID" line, read from kmsg (kmsgFrom).
func killedFigures(t *testing.T, kmsg, pid int) map[string]uint64 {
	t.Helper()
	re := regexp.MustCompile(`Killed process ` + strconv.Itoa(pid) + ` \(`)
	buf := make([]byte, 8192)
	var found []string
	for {
		n, err := unix.Read(kmsg, buf)
		if err == unix.EPIPE { // overwritten while read: go on
			continue
		}
		if err != nil {
			break
		}
		if s := string(buf[:n]); re.MatchString(s) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d \"Killed process %d\" lines in /dev/kmsg, want 1: %q", len(found), pid, found)
	}
	figures := map[string]uint64{}
	for _, m := range regexp.MustCompile(`([a-z-]+):(\d+)kB`).FindAllStringSubmatch(found[0], -1) {
		figures[m[1]], _ = strconv.ParseUint(m[2], 10, 64)
	}
	if len(figures) != 5 {
		t.Fatalf("figures %v in %q", figures, found[0])
	}
	return figures
}
