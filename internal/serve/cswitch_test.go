package serve

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

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
	entries := 0
	if err := loader.ReadAll(m.Threads, func(tid *uint32, _ *serveCswitchServeCswitchThread) {
		entries++
		if slices.Contains(pids, int(*tid)) {
			t.Errorf("thread %d exited (a child of the forker) and still has an entry", *tid)
		}
	}); err != nil {
		t.Fatal(err)
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
		ch := make(chan prometheus.Metric, 1)
		f.emit(ch, 10)
		var m dto.Metric
		if err := (<-ch).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
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
