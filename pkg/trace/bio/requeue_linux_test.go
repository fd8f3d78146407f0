package bio

import (
	"strings"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

// every is each way the tools count, attached at once to one disk:
// biosnoop (its start at block_io_start, or before 6.5 the insert or the
// issue), biolatency from the issue (no start hook) and with -Q (from
// the start), and biotop.
type every struct {
	snoop  func() ([]snooped, Stats)
	plain  *Latency
	queued *Latency
	top    *Top
}

func attachEvery(t *testing.T, disk string) *every {
	t.Helper()
	e := &every{snoop: snoop(t, Config{Disk: disk, Queued: true})}
	var err error
	if e.plain, err = NewLatency(Config{Disk: disk}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.plain.Close() })
	if e.queued, err = NewLatency(Config{Disk: disk, Queued: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.queued.Close() })
	if e.top, err = NewTop(Config{Disk: disk}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.top.Close() })
	return e
}

// tally is what one tool counted: requests, and its stats.
type tally struct {
	name  string
	count uint64
	st    Stats
}

// read stops biosnoop and reads every tool: its events, biolatency's
// histograms and biotop's rows (in both, by request type).
func (e *every) read(t *testing.T) (evs []snooped, rows []Row, tallies []tally) {
	t.Helper()
	evs, st := e.snoop()
	tallies = append(tallies, tally{"biosnoop -Q", uint64(len(evs)), st})
	for _, l := range []struct {
		name string
		l    *Latency
	}{{"biolatency", e.plain}, {"biolatency -Q", e.queued}} {
		hists, err := l.l.Delta()
		if err != nil {
			t.Fatal(err)
		}
		st, err := l.l.Stats()
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, h := range hists {
			n += h.Total()
		}
		tallies = append(tallies, tally{l.name, n, st})
	}
	rows, err := e.top.Delta()
	if err != nil {
		t.Fatal(err)
	}
	st, err = e.top.Stats()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, r := range rows {
		n += r.Reads + r.Writes
	}
	return evs, rows, append(tallies, tally{"biotop", n, st})
}

// exactly checks a tool's counts against the kernel's: the requests it
// counted and those whose start it did not see, each exactly as many as
// the workload and /sys/block's stat say. A program run the kernel skipped
// (see covered) makes at most one request of the first kind one of the
// second, or leaves it out.
func exactly(t *testing.T, c tally, counted, noStart uint64) {
	t.Helper()
	t.Logf("%s: %d counted, %d with no start seen, %d requeues seen, %d program runs skipped",
		c.name, c.count, c.st.NoStart, c.st.Requeued, c.st.Missed)
	seen, want := c.count+c.st.NoStart, counted+noStart
	if c.count > counted || counted-c.count > c.st.Missed || seen > want || want-seen > c.st.Missed {
		t.Errorf("%s: counted %d and %d with no start seen, want %d and %d; stats %+v",
			c.name, c.count, c.st.NoStart, counted, noStart, c.st)
	}
	if c.st.Done != c.count || c.st.NotCounted() != 0 {
		t.Errorf("%s: %d counted, stats %+v: nothing may be left out", c.name, c.count, c.st)
	}
}

// requeueEnd is where TestRequeue's lower device ends once shrunk: 1 MiB
// before the end of the upper one.
const requeueEnd = 15 << 20

// requeueOps are direct I/Os on the upper device: reads and writes before
// requeueEnd, reads that cross it (loop gets a short read from below,
// completes the part it got and requeues the request, whose rest then
// fails: one requeue each) and one past it (fails at once, no requeue).
var requeueOps = []testkit.IOOp{
	{Write: true, Offset: 0, Size: 4096},
	{Offset: requeueEnd - 2048, Size: 4096, Fails: true},
	{Offset: 8192, Size: 8192},
	{Offset: requeueEnd - 512, Size: 16384, Fails: true},
	{Write: true, Offset: 1 << 20, Size: 65536},
	{Offset: requeueEnd - 32768, Size: 65536, Fails: true},
	{Offset: requeueEnd + 4096, Size: 4096, Fails: true},
	{Offset: 0, Size: 4096},
}

// requeuedOps is how many of ops cross end.
func requeuedOps(ops []testkit.IOOp, end int64) (n uint64) {
	for _, o := range ops {
		if o.Offset < end && o.Offset+int64(o.Size) > end {
			n++
		}
	}
	return n
}

// TestRequeue: requests the driver requeues are counted once each, by
// every tool, with their submitter, first sector and whole size (the
// kernel counts all of a request's sectors, those completed before the
// requeue too). The requeues are real: loop in direct I/O mode over a
// second loop device that shrank under it requeues a read that crosses
// the lower device's new end (testkit.NewDirectLoop), and the kernel's own
// block_rq_requeue trace event counts them.
func TestRequeue(t *testing.T) {
	testkit.RequireRoot(t)
	testkit.QuietConsole(t) // the reads that fail print I/O errors
	lower := testkit.NewLoop(t, 16<<20)
	l := testkit.NewDirectLoop(t, lower)
	lower.Shrink(t, requeueEnd)
	cg, cgID := newCgroup(t, "requeue")
	p := testkit.StartIO(t, "bk-bio-requeue", l, cg, requeueOps)
	requeues := traceEvent(t, l, "block_rq_requeue")
	tools := attachEvery(t, l.Name)
	before := l.Stat(t)
	p.Release(t)
	p.Finish(t)
	delta := l.Stat(t).Sub(before)
	evs, rows, tallies := tools.read(t)

	reads, writes, rs, ws := countOps(requeueOps)
	if delta.Reads != reads || delta.Writes != writes || delta.ReadSectors != rs || delta.WriteSectors != ws {
		t.Fatalf("%s/stat moved by %+v, the workload did %d reads (%d sectors), %d writes (%d sectors)",
			l.Name, delta, reads, rs, writes, ws)
	}
	want := requeuedOps(requeueOps, requeueEnd)
	kernel := requeues()
	if got := uint64(strings.Count(kernel, "block_rq_requeue:")); got != want {
		t.Fatalf("the kernel requeued %d requests, want %d (one per read across the end of %s):\n%s", got, want, lower.Name, kernel)
	}
	t.Logf("the kernel's requeues:\n%s", kernel)
	for _, c := range tallies {
		exactly(t, c, reads+writes, 0)
		if c.name != "biolatency" && c.st.Requeued != want { // without -Q, no requeue hook
			t.Errorf("%s: %d requeues seen, the kernel made %d", c.name, c.st.Requeued, want)
		}
	}
	// One event per request, in order, each with where it started and
	// all of its size.
	inOrder(t, p, l.Name, cgID, evs, tallies[0].st, nil)
	if tallies[len(tallies)-1].st.Missed == 0 {
		wantRow := Row{PID: p.PID, Comm: p.Comm, Disk: l.Name, Cgroup: cgID, Reads: reads, Writes: writes,
			ReadBytes: rs * 512, WriteBytes: ws * 512}
		if len(rows) != 1 {
			t.Fatalf("biotop: %d rows, want 1: %+v", len(rows), rows)
		}
		row := rows[0]
		row.Time, row.Latency = wantRow.Time, 0
		if row != wantRow {
			t.Errorf("biotop row\n got %+v\nwant %+v", row, wantRow)
		}
	}
}

// TestInFlightAtAttach: requests that were there before the tools were
// attached are counted apart (Stats.NoStart), never in the histograms, the
// events or biotop's rows, and the tools count the others exactly: the
// two add up to the kernel's stat. The requests are held in flight by the
// test: loop's writes to its backing file wait (Loop.HoldWrites) and,
// with mq-deadline, more writes than the driver has tags (Loop.Tags) are
// submitted at once, so at attach some are issued and the rest wait in
// the scheduler, started but not issued (before 6.5 their insert is the
// start, and their issue after attach must not pass for one). biolatency
// without -Q measures from the issue: the requests it saw issued are its
// own, so only the issued ones are "start not seen" for it.
func TestInFlightAtAttach(t *testing.T) {
	testkit.RequireRoot(t)
	l := testkit.NewLoop(t, 16<<20)
	held, tags, waiting := heldWrites(t, l)
	fresh := make([]testkit.IOOp, len(exactOps))
	for i, o := range exactOps {
		o.Offset += 8 << 20
		fresh[i] = o
	}
	cg, cgID := newCgroup(t, "inflight")
	old := testkit.StartAIO(t, "bk-bio-old", l, "", held)
	late := testkit.StartIO(t, "bk-bio-late", l, cg, fresh)
	release := l.HoldWrites(t)
	old.Release(t)
	old.Submitted(t)
	awaitIssued(t, l, tags)
	issued := uint64(tags)
	before := l.Stat(t)
	tools := attachEvery(t, l.Name)
	late.Release(t)
	release()
	old.Finish(t)
	late.Finish(t)
	delta := l.Stat(t).Sub(before)
	evs, rows, tallies := tools.read(t)

	if got, want := delta.Reads+delta.Writes, uint64(len(held)+len(fresh)); got != want {
		t.Fatalf("%s/stat counts %d requests completed, the workload did %d", l.Name, got, want)
	}
	n := uint64(len(fresh))
	for _, c := range tallies {
		if c.name == "biolatency" { // from the issue
			exactly(t, c, n+uint64(waiting), issued)
		} else {
			exactly(t, c, n, uint64(len(held)))
		}
	}
	for _, e := range evs {
		if e.PID != late.PID || e.Comm != late.Comm || e.Cgroup != cgID || e.Sector < 8<<20/512 {
			t.Errorf("biosnoop reported %+v: not one of %s's requests (sector %d on)", e, late.Comm, 8<<20/512)
		}
	}
	for _, r := range rows {
		if r.PID != late.PID || r.Comm != late.Comm || r.Cgroup != cgID {
			t.Errorf("biotop reported %+v: not %s's", r, late.Comm)
		}
	}
}

// heldWrites are writes for a StartAIO child that l's driver holds in
// flight once its writes are held (Loop.HoldWrites): tags of them issued
// (the driver's tags, Loop.Tags) and, with mq-deadline, waiting more
// beyond the tags in the scheduler, started but not issued. They are 4 KiB
// apart: none merges with another.
func heldWrites(t *testing.T, l *testkit.Loop) (ops []testkit.IOOp, tags, waiting int) {
	t.Helper()
	tags = l.Tags(t)
	waiting = 8 // requests beyond the driver's tags
	if !l.SetScheduler(t, "mq-deadline") {
		// loop on 5.10 takes no scheduler: a request beyond the tags
		// would wait for one before it is a request (and io_submit
		// with it), so every request held is an issued one. From 6.1
		// on (the matrix) loop takes one: mq-deadline must be there.
		if testkit.KernelAtLeast(6, 1) {
			t.Fatalf("%s offers no I/O scheduler: mq-deadline is missing (vmtest loads its module)", l.Name)
		}
		waiting = 0
	}
	for i := range tags + waiting {
		ops = append(ops, testkit.IOOp{Write: true, Offset: int64(i) * 8192, Size: 4096})
	}
	return ops, tags, waiting
}

// awaitIssued waits (30 s at most) until l's driver has all its tags'
// requests issued and held (heldWrites).
func awaitIssued(t *testing.T, l *testkit.Loop, tags int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for l.Issued(t) < uint64(tags) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if issued := l.Issued(t); issued != uint64(tags) {
		t.Fatalf("%s: %d requests issued and held, want all %d of the driver's tags", l.Name, issued, tags)
	}
}
