package offcputime

import (
	"bufio"
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/pkg/loader"
	"github.com/bpfkit/bpfkit/pkg/loader/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// TestNanosleep: a worker sleeping 50 × 20 ms with nanosleep(2) is off CPU
// about 1 s under a kernel stack with the sleep path and a user stack with
// the worker's function.
func TestNanosleep(t *testing.T) {
	testkit.RequireRoot(t)
	w := testkit.Nanosleep(t, 50, 20*time.Millisecond)
	tr, err := New(Config{Filter: loader.TaskFilter{TID: uint32(w.TID)}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	w.Release(t)
	w.Wait(t)
	entries, err := tr.Read()
	if err != nil {
		t.Fatal(err)
	}
	var sleep Entry
	var text, folded []byte
	for _, e := range entries {
		if e.TID != uint32(w.TID) || e.PID != uint32(w.PID) {
			t.Errorf("entry of tid %d pid %d: filtered on tid %d", e.TID, e.PID, w.TID)
		}
		text = AppendText(text, &e, true, true)
		folded = AppendFolded(folded, &e, true, true)
		if slices.Contains(e.Kernel, "do_nanosleep") || slices.Contains(e.Kernel, "hrtimer_nanosleep") {
			if sleep.Count != 0 {
				t.Errorf("two entries with the sleep path:\n%s", text)
			}
			sleep = e
		}
	}
	t.Logf("\n%s", text)
	if sleep.Count == 0 {
		t.Fatalf("no entry with do_nanosleep or hrtimer_nanosleep in the kernel stack")
	}
	// A sleep whose timer expires before the task reaches schedule() (a
	// busy host can stall a vCPU that long) makes no switch, and a task
	// preempted on its way into the sleep makes one more under the same
	// stacks: allow a few either way.
	if sleep.Count < 45 || sleep.Count > 55 {
		t.Errorf("slept %d times, want 50", sleep.Count)
	}
	// Each sleep lasts at least 20 ms from just before the switch-out; a
	// busy machine may add to it.
	// (Counts above 50 are preemptions on the way in, not sleeps.)
	if min := time.Duration(min(sleep.Count, 50)) * 19800 * time.Microsecond; sleep.Total < min || sleep.Total > 2*time.Second {
		t.Errorf("off CPU %s in nanosleep, want about 1s (at least %s)", sleep.Total, min)
	}
	if !slices.ContainsFunc(sleep.User, func(f string) bool { return strings.HasSuffix(f, "testkit.nanosleep") }) {
		t.Errorf("user stack does not show the worker's function: %q", sleep.User)
	}
	if sleep.Comm != testkit.NanosleepComm {
		t.Errorf("comm %q", sleep.Comm)
	}

	// Folded output parses: comm;frames... count, and sums to the totals.
	var sum time.Duration
	sc := bufio.NewScanner(bytes.NewReader(folded))
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		n, err := strconv.ParseInt(line[i+1:], 10, 64)
		if i < 0 || err != nil {
			t.Fatalf("folded line %q", line)
		}
		frames := strings.Split(line[:i], ";")
		if frames[0] != testkit.NanosleepComm || slices.Contains(frames, "") {
			t.Errorf("folded line %q", line)
		}
		sum += time.Duration(n) * time.Microsecond
	}
	var want time.Duration
	for _, e := range entries {
		want += e.Total.Truncate(time.Microsecond)
	}
	if sum != want {
		t.Errorf("folded lines add up to %s, totals to %s", sum, want)
	}
}

func TestParseStates(t *testing.T) {
	if s, err := ParseStates("D"); err != nil || s != Uninterruptible {
		t.Errorf("D: %v %v", s, err)
	}
	if s, err := ParseStates("s,R"); err != nil || s != Sleeping|Preempted {
		t.Errorf("s,R: %v %v", s, err)
	}
	if _, err := ParseStates("Z"); err == nil {
		t.Error("Z accepted")
	}
}
