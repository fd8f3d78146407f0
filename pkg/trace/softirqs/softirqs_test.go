package softirqs

import (
	"net"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

type snapshot struct {
	at    time.Time
	stats map[[2]int]Stat
}

func snap(t *testing.T, tr *Tracer) snapshot {
	t.Helper()
	s, err := tr.Totals()
	if err != nil {
		t.Fatal(err)
	}
	m := map[[2]int]Stat{}
	for _, st := range s {
		m[[2]int{st.CPU, st.Vector}] = st
	}
	return snapshot{time.Now(), m}
}

func proc(t *testing.T) [][]uint64 {
	t.Helper()
	_, counts, err := ReadProc()
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

// TestCounts: over a window with NET_RX traffic, every CPU's count of
// every vector in /proc/softirqs moves by exactly as much as softirqs
// counted, bracketed: the kernel counts /proc/softirqs just before
// softirq_entry, so with reads M0 < A1 < M1 and M2 < A2 < M3 (the tracer's
// totals M, /proc's A, 2 ms apart), A2-A1 lies in [M2-M1, M3-M0] whatever
// fires during the reads. Each CPU's time in softirqs between M1 and M2 is
// at most the wall time from M0 to M3 plus the one run that may have begun
// before M0 (runs on a CPU do not overlap), bounded by its histogram
// bucket.
func TestCounts(t *testing.T) {
	testkit.RequireRoot(t)
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ns := testkit.NewNetNS(t, "softirqs")

	m0 := snap(t, tr)
	time.Sleep(2 * time.Millisecond)
	a1 := proc(t)
	time.Sleep(2 * time.Millisecond)
	m1 := snap(t, tr)
	// NET_RX work: 200 datagrams over the namespace's loopback.
	if err := ns.Do(func() error {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer c.Close()
		for range 200 {
			if _, err := c.WriteTo([]byte("softirqs"), c.LocalAddr()); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	m2 := snap(t, tr)
	time.Sleep(2 * time.Millisecond)
	a2 := proc(t)
	time.Sleep(2 * time.Millisecond)
	m3 := snap(t, tr)

	netRX := uint64(0)
	for vec, perCPU := range a2 {
		for cpu := range perCPU {
			k := [2]int{cpu, vec}
			proc := a2[vec][cpu] - a1[vec][cpu]
			low := m2.stats[k].Count - m1.stats[k].Count
			high := m3.stats[k].Count - m0.stats[k].Count
			if proc < low || proc > high {
				t.Errorf("cpu %d %s: /proc/softirqs rose by %d, softirqs counted %d..%d (missed runs: %d)",
					cpu, tr.names[vec], proc, low, high, tr.Health().Missed)
			}
			if tr.names[vec] == "NET_RX" {
				netRX += low
			}
		}
	}
	if netRX == 0 {
		t.Errorf("no NET_RX softirq counted during 200 datagrams")
	}
	wall := m3.at.Sub(m0.at)
	cpus := map[int]time.Duration{}
	longest := map[int]time.Duration{}
	for k, s := range m2.stats {
		d := s.Time - m1.stats[k].Time
		cpus[k[0]] += d
		for i := Slots - 1; i >= 0; i-- {
			if s.Hist[i] > m1.stats[k].Hist[i] {
				// bucket i holds runs of 2^i to 2^(i+1)-1 µs
				longest[k[0]] = max(longest[k[0]], time.Duration(uint64(1)<<(i+1))*time.Microsecond)
				break
			}
		}
	}
	for cpu, d := range cpus {
		if d > wall+longest[cpu] {
			t.Errorf("cpu %d spent %v in softirqs in a %v window (longest run under %v)", cpu, d, wall, longest[cpu])
		}
	}
}
