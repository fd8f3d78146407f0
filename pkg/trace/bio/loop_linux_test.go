package bio

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// newCgroup creates a cgroup v2 directory for the test and returns its
// path and id; it is removed when the test ends.
func newCgroup(t *testing.T, name string) (string, uint64) {
	t.Helper()
	root, err := loader.Cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	dir := testkit.NewCgroup(t, root, fmt.Sprintf("bpfkit-bio-%d-%s", os.Getpid(), name)).Dir
	id, err := loader.CgroupID(dir) // the id the tools' --cgroup filter uses
	if err != nil {
		t.Fatal(err)
	}
	return dir, id
}

// snooped is an Event copied out of the callback.
type snooped struct {
	PID            uint32
	Comm, RWBS     string
	Disk           string
	Sector         uint64
	Bytes          uint32
	Queue, Service time.Duration
	Cgroup         uint64
	// Done is the completion's CLOCK_BOOTTIME (bpf_ktime_get_boot_ns):
	// Event.Time converted back with the tracer's own clock, exactly.
	Done time.Duration
}

// snoop runs a Snoop with cfg in the background; the returned function
// stops it and returns every event, in completion order.
func snoop(t *testing.T, cfg Config) (stop func() ([]snooped, Stats)) {
	t.Helper()
	s, err := NewSnoop(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	var evs []snooped
	done := make(chan error, 1)
	go func() {
		_, err := s.Run(ctx, loader.StreamOptions{}, func(e *Event) error {
			evs = append(evs, snooped{PID: e.PID, Comm: string(e.Comm), RWBS: string(e.RWBS), Disk: e.Disk,
				Sector: e.Sector, Bytes: e.Bytes, Queue: e.Queue, Service: e.Service, Cgroup: e.Cgroup,
				Done: e.Time.Sub(s.clock.Time(0))})
			return nil
		})
		done <- err
	}()
	return func() ([]snooped, Stats) {
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("biosnoop: %v", err)
		}
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return evs, st
	}
}

// kernelRq is a request as the kernel's own block_rq_complete trace event
// prints it (its rwbs from blk_fill_rwbs): an oracle independent of bpfkit.
type kernelRq struct {
	RWBS    string
	Sector  uint64
	Sectors uint32
}

var rqCompleteLine = regexp.MustCompile(`block_rq_complete: (\d+),(\d+) (\S+) \([^)]*\) (\d+) \+ (\d+)`)

// traceCompletions turns on the block_rq_complete trace event of l; the
// returned function turns it off and returns the requests that completed
// meanwhile, in order.
func traceCompletions(t *testing.T, l *testkit.Loop) func() []kernelRq {
	t.Helper()
	lines := traceEvent(t, l, "block_rq_complete")
	return func() []kernelRq {
		t.Helper()
		var out []kernelRq
		for _, m := range rqCompleteLine.FindAllStringSubmatch(lines(), -1) {
			sector, _ := strconv.ParseUint(m[4], 10, 64)
			n, _ := strconv.ParseUint(m[5], 10, 32)
			out = append(out, kernelRq{RWBS: m[3], Sector: sector, Sectors: uint32(n)})
		}
		return out
	}
}

// traceEvent turns on the kernel's block trace event (block_rq_complete,
// block_rq_requeue...) for l's requests, in a tracefs instance of its
// own; the returned function turns it off and returns what it printed.
func traceEvent(t *testing.T, l *testkit.Loop, event string) func() string {
	t.Helper()
	if err := loader.EnsureTracefs(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(loader.TracefsPath, "instances", fmt.Sprintf("bpfkit-bio-%d-%s-%s", os.Getpid(), l.Name, event))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("tracefs instance: %v", err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	ev := filepath.Join(dir, "events/block", event)
	if err := os.WriteFile(filepath.Join(ev, "filter"), []byte(fmt.Sprintf("dev == %d", l.Dev)), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ev, "enable"), []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	return func() string {
		t.Helper()
		if err := os.WriteFile(filepath.Join(ev, "enable"), []byte("0"), 0); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "trace"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
}
