package serve

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// TestCswitchExitedThreadsLeave: the entry of a thread that exits goes at
// its last switch (prev in TASK_DEAD, a value this checks on every kernel
// of the matrix), so that the entries of a long-running serve do not grow
// with every thread that ever ran. The threads are the main threads of
// processes that exit at once (tid = pid); their counts are checked by
// cmd/bpfkit's TestServeContextSwitches.
func TestCswitchExitedThreadsLeave(t *testing.T) {
	testkit.RequireRoot(t)
	objs, err := toolByName("cswitch").load(false)
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	const n = 20
	w, children := testkit.Forker(t, n)
	w.Release(t)
	w.Wait(t)
	pids := children()
	var m serveCswitchMaps
	if err := objs.Assign(&m); err != nil {
		t.Fatal(err)
	}
	// A child's last switch, the one that deletes its entry, comes after
	// its parent's wait4 returned (exit_notify runs before the exiting
	// task's last schedule()): wait for it, up to 10 s (an entry left
	// behind stays).
	var entries int
	var left []uint32
	testkit.WaitFor(10*time.Second, func() bool {
		entries, left = 0, left[:0]
		if err := loader.ReadAll(m.Threads, func(tid *uint32, _ *serveCswitchServeCswitchThread) {
			entries++
			if slices.Contains(pids, int(*tid)) {
				left = append(left, *tid)
			}
		}); err != nil {
			t.Fatal(err)
		}
		return len(left) == 0
	})
	for _, tid := range left {
		t.Errorf("thread %d exited (a child of the forker) and still has an entry", tid)
	}
	// The forker's own thread, blocked on its stdin, switched: the
	// entries were read.
	if entries == 0 {
		t.Error("no thread entry at all")
	}
	if h := objs.Health(); h.Lost != 0 {
		t.Errorf("%d switches not counted (a map full)", h.Lost)
	}
}

// TestFamilyRising: a series of a rising family is sent with the highest
// value it had, not a lower one read later (a scrape that missed counts in
// flight), until its values come from another source (a tool loaded anew,
// counting from zero: Prometheus sees the reset).
func TestFamilyRising(t *testing.T) {
	f := newFamily(descSwitches, 1, newLabelPairs())
	cg := &cgroup{path: "/a"}
	scrape := func(from any, v float64) float64 {
		t.Helper()
		f.rising(from)
		f.add(cg, "voluntary", v)
		mf := f.build(10)
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("%d series, want 1", len(mf.GetMetric()))
		}
		return mf.GetMetric()[0].GetCounter().GetValue()
	}
	maps := []*int{new(int), new(int)} // two loads of a tool
	for i, c := range []struct {
		from      *int
		read, got float64
	}{
		{maps[0], 10, 10},
		{maps[0], 7, 10}, // lower than the truth: held
		{maps[0], 12, 12},
		{maps[1], 3, 3}, // loaded anew
	} {
		if got := scrape(c.from, c.read); got != c.got {
			t.Errorf("scrape %d: read %v, sent %v, want %v", i, c.read, got, c.got)
		}
	}
}

// TestCswitchMapFull: with room for one thread in the map of threads (its
// size set in the map spec), the switches of every other thread go
// straight to their cgroup's retired counters, classified as a thread's
// first switch is (from the task's state): not one is lost. A nanosleep
// worker moved into a cgroup of its own makes them.
func TestCswitchMapFull(t *testing.T) {
	testkit.RequireRoot(t)
	spec, err := loadServeCswitch()
	if err != nil {
		t.Fatal(err)
	}
	spec.Maps[serveCswitchMapThreads].MaxEntries = 1
	objs, err := toolByName("cswitch").Load(spec, loader.Options{RingSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	var m serveCswitchMaps
	if err := objs.Assign(&m); err != nil {
		t.Fatal(err)
	}
	root, err := loader.Cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	c := testkit.NewCgroup(t, root, fmt.Sprintf("bpfkit-serve-full-%d", os.Getpid()))
	const n = 200
	w := testkit.Nanosleep(t, n, 100*time.Microsecond)
	if err := os.WriteFile(filepath.Join(c.Dir, "cgroup.procs"), []byte(strconv.Itoa(w.PID)), 0); err != nil {
		t.Fatal(err)
	}
	// The cgroup's switches as the map counts them, with the worker's
	// (all its threads') as /proc counts them, read before and after:
	// again until /proc did not move across the map's read.
	read := func() (kernel, counted float64) {
		t.Helper()
		for range 10 {
			vol, invol, err := testkit.ProcessSwitches(strconv.Itoa(w.PID))
			if err != nil {
				t.Fatal(err)
			}
			counted = 0
			if err := loader.ReadAll(m.Retired, func(id *uint64, s *serveCswitchServeCswitch) {
				if *id == c.ID {
					counted += float64(s.Voluntary + s.Involuntary)
				}
			}); err != nil {
				t.Fatal(err)
			}
			if err := loader.ReadAll(m.Threads, func(_ *uint32, s *serveCswitchServeCswitchThread) {
				if s.Cgroup == c.ID {
					counted += float64(s.Voluntary + s.Involuntary)
				}
			}); err != nil {
				t.Fatal(err)
			}
			vol2, invol2, err := testkit.ProcessSwitches(strconv.Itoa(w.PID))
			if err != nil {
				t.Fatal(err)
			}
			if vol2 == vol && invol2 == invol {
				return vol + invol, counted
			}
		}
		t.Fatal("the worker never stayed idle across a read of the maps")
		return 0, 0
	}
	// And until two reads 20 ms apart agree: /proc counts a switch before
	// the program does (the kernel adds to nvcsw before sched_switch), so
	// a read in between finds it in /proc, before and after the maps,
	// and not in the maps (the worker's Go runtime threads still wake
	// now and then; seen once on 6.12 under TCG, one switch short).
	counts := func() (kernel, counted float64) {
		t.Helper()
		lastKernel, lastCounted := -1.0, -1.0
		for range 50 {
			if kernel, counted = read(); kernel == lastKernel && counted == lastCounted {
				return kernel, counted
			}
			lastKernel, lastCounted = kernel, counted
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("the worker's switches never stayed still for 20 ms")
		return 0, 0
	}
	kernel0, counted0 := counts()
	w.Release(t)
	w.Wait(t)
	kernel1, counted1 := counts()
	if got, want := counted1-counted0, kernel1-kernel0; got != want {
		t.Errorf("the cgroup's switches rose by %v, the worker's by %v", got, want)
	}
	if kernel1-kernel0 < n {
		t.Errorf("the worker made %v switches, fewer than its %d sleeps", kernel1-kernel0, n)
	}
	if h := objs.Health(); h.Lost != 0 {
		t.Errorf("%d switches not counted (a map full)", h.Lost)
	}
}
