package bio

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

// TestQueueTime: biosnoop splits each request's time at its issue: queue
// time from its start to its issue, service time from its issue to its
// completion. The test makes requests wait between the two, held as
// TestInFlightAtAttach holds them: with loop's writes held and
// mq-deadline, a child submits at once more writes than the driver has
// tags (heldWrites). Those with a tag are issued and held; the others
// wait in the scheduler, started and not issued, until the test releases
// the writes and a held request completes and frees its tag. So:
//   - exactly the waiting requests (as many as the driver lacked tags for,
//     /sys/block's inflight having shown all the tags issued) are issued
//     at or after the first completion, every time from the kernel: the
//     completion's bpf_ktime_get_boot_ns less the service time (the issue
//     program runs after the tag is freed, which comes after the
//     completion program ran); a service time that took in the queue time
//     puts their issue at their start, before any completion;
//   - each waiting request queued for at least the hold: from before the
//     child said it had submitted them (after their start) to just before
//     the release (before their issue);
//   - each other request was served for at least the hold: from before
//     inflight showed all the tags issued to just before the release
//     (before any completion).
//
// Loop on 5.10 takes no scheduler: nothing waits there, the held requests
// are checked.
func TestQueueTime(t *testing.T) {
	testkit.RequireRoot(t)
	l := testkit.NewLoop(t, 16<<20)
	ops, tags, waiting := heldWrites(t, l)
	p := testkit.StartAIO(t, "bk-bio-queue", l, "", ops)
	stop := snoop(t, Config{Disk: l.Name})
	before := l.Stat(t)
	release := l.HoldWrites(t)
	p.Release(t)
	p.Submitted(t)
	submitted := monotonic()
	awaitIssued(t, l, tags)
	issued := monotonic()
	// The hold: long enough that a time that took it in, or left it out,
	// is far off its bound; the checks hold for any length.
	time.Sleep(50 * time.Millisecond)
	released := monotonic()
	release()
	p.Finish(t)
	delta := l.Stat(t).Sub(before)
	evs, st := stop()

	if delta.Writes != uint64(len(ops)) || delta.Reads != 0 {
		t.Fatalf("%s/stat moved by %+v, the workload did %d writes", l.Name, delta, len(ops))
	}
	covered(t, "biosnoop requests", uint64(len(evs)), uint64(len(ops)), st)
	if uint64(len(evs)) != st.Done || st.NotCounted() != 0 {
		t.Errorf("biosnoop: %d events, stats %+v", len(evs), st)
	}
	sectors := map[uint64]bool{}
	for _, o := range ops {
		sectors[uint64(o.Offset/512)] = true
	}
	first := time.Duration(math.MaxInt64)
	for _, e := range evs {
		if !sectors[e.Sector] || e.Bytes != 4096 || e.PID != p.PID || e.Comm != p.Comm || e.RWBS[0] != 'W' {
			t.Errorf("biosnoop reported %+v: not one of %s's writes, or reported twice", e, p.Comm)
		}
		delete(sectors, e.Sector)
		first = min(first, e.Done)
	}
	// The kernel's clock for BPF programs and the test's drift apart
	// under TCG (see zombies' TestReaped: 146.6 ms in the kernel for
	// 154.4 ms seen from user space, on 6.1): an eighth, in emulated VMs
	// only, off the test's lengths of the hold.
	atLeast := func(d time.Duration) time.Duration {
		if testkit.Emulated() {
			return d - d/8
		}
		return d
	}
	queued, served := atLeast(released-submitted), atLeast(released-issued)
	var after uint64
	var wrong []string
	for _, e := range evs {
		if e.Done-e.Service >= first { // issued after the first completion: it waited for a tag
			after++
			if e.Queue < queued {
				wrong = append(wrong, fmt.Sprintf("waited for a tag: queue %v, want at least %v (service %v)", e.Queue, queued, e.Service))
			}
		} else if e.Service < served {
			wrong = append(wrong, fmt.Sprintf("held by the driver: service %v, want at least %v (queue %v)", e.Service, served, e.Queue))
		}
	}
	t.Logf("%d requests: %d tags held %v, %d waited %v; stats %+v", len(evs), tags, released-issued, waiting, released-submitted, st)
	// A program run the kernel skipped (see covered) costs at most one
	// request: a skipped start makes a waiting request's start its
	// issue (before 6.5), a skipped issue makes a waiting request's
	// issue its start, a skipped completion leaves one out (and the first
	// completion seen may be a later one).
	if after > uint64(waiting) || uint64(waiting)-after > st.Missed {
		t.Errorf("%d requests issued (completion less service time) at or after the first completion, want the %d that waited in mq-deadline for one of the driver's %d tags; stats %+v",
			after, waiting, tags, st)
	}
	if uint64(len(wrong)) > st.Missed {
		t.Errorf("%d requests (%d program runs skipped):\n%s", len(wrong), st.Missed, strings.Join(wrong, "\n"))
	}
}

// monotonic is CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
func monotonic() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // cannot fail with a valid clock and pointer
	return time.Duration(ts.Nano())
}
