package drops

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// pair is two namespaces joined by a veth: a (va) sends, b (vb) receives.
type pair struct {
	a, b   *testkit.NetNS
	bInode uint32
	a4, b4 string
	a6, b6 string
}

// newPair makes the pair, with IPv6 addresses too when ipv6 is set; else
// with IPv6 off, so that nothing but what the test sends crosses the veth.
func newPair(t *testing.T, ipv6 bool) *pair {
	p := &pair{a4: "198.18.13.1", b4: "198.18.13.2", a6: "2001:2::13:1", b6: "2001:2::13:2"}
	p.a = testkit.NewNetNS(t, "drops-a")
	p.b = testkit.NewNetNS(t, "drops-b")
	if !ipv6 {
		p.a.NoIPv6(t)
		p.b.NoIPv6(t)
	}
	testkit.Veth(t, p.a, "va", p.a4+"/24", p.b, "vb", p.b4+"/24")
	// Permanent neighbours: no ARP or NDP traffic to race with.
	p.a.Neighbor(t, "va", p.b4, p.b.MAC(t, "vb"))
	p.b.Neighbor(t, "vb", p.a4, p.a.MAC(t, "va"))
	if ipv6 {
		p.a.AddAddr(t, "va", p.a6+"/64")
		p.b.AddAddr(t, "vb", p.b6+"/64")
		p.a.Neighbor(t, "va", p.b6, p.b.MAC(t, "vb"))
		p.b.Neighbor(t, "vb", p.a6, p.a.MAC(t, "va"))
	}
	p.bInode = p.b.Inode(t)
	return p
}

// send sends n datagrams from namespace from to addr:port on one
// unconnected socket (an ICMP error does not fail its next send).
func send(t *testing.T, from *testkit.NetNS, addr string, port, n int) {
	t.Helper()
	err := from.Do(func() error {
		c, err := net.ListenPacket("udp", ":0")
		if err != nil {
			return err
		}
		defer c.Close()
		to := &net.UDPAddr{IP: net.ParseIP(addr), Port: port}
		for i := range n {
			if _, err := c.WriteTo([]byte("bpfkit drops"), to); err != nil {
				return fmt.Errorf("datagram %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// snmp reads a counter of b's /proc/net/snmp ("Udp", "NoPorts") or, with
// prefix "", of its /proc/net/snmp6 ("Udp6NoPorts").
func (p *pair) snmp(t *testing.T, prefix, name string) uint64 {
	t.Helper()
	file := "snmp"
	if prefix == "" {
		file = "snmp6"
	}
	var raw []byte
	if err := p.b.Do(func() (err error) {
		raw, err = os.ReadFile("/proc/thread-self/net/" + file)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if prefix == "" && len(f) == 2 && f[0] == name {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		if prefix == "" || len(f) == 0 || f[0] != prefix+":" || i+1 >= len(lines) {
			continue
		}
		vals := strings.Fields(lines[i+1])
		for j, k := range f {
			if k == name && j < len(vals) {
				v, err := strconv.ParseUint(vals[j], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("no %s %s in /proc/net/%s", prefix, name, file)
	return 0
}

// collect runs the tracer and keeps the drops in namespace netns whose
// destination port is port (0 for either: every drop); stop waits for want of them (10 s at most),
// then 300 ms more for any extra, and returns them.
func collect(t *testing.T, tr *Tracer, netns uint32, port uint16) (stop func(want int) []Event) {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu   sync.Mutex
		got  []Event
		done = make(chan error, 1)
	)
	go func() {
		_, err := tr.Run(ctx, loader.StreamOptions{}, func(e *Event) error {
			if netns == 0 && port == 0 || e.Netns == netns && e.HasPorts && e.Dport == port {
				mu.Lock()
				got = append(got, *e)
				mu.Unlock()
			}
			return nil
		})
		done <- err
	}()
	t.Cleanup(cancel)
	return func(want int) []Event {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			n := len(got)
			mu.Unlock()
			if n >= want {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

func newTracer(t *testing.T, cfg Config) *Tracer {
	t.Helper()
	testkit.RequireRoot(t)
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	// Reasons came with the tracepoint argument in 5.17: a kernel that
	// should have them and does not is a regression, not a skip.
	if tr.HasReasons() != testkit.KernelAtLeast(5, 17) {
		ma, mi := testkit.KernelVersion()
		t.Fatalf("HasReasons() = %v on a %d.%d kernel", tr.HasReasons(), ma, mi)
	}
	return tr
}

// wantReason is the reason a drop must carry: reason on 5.17+, else
// NOT_SPECIFIED.
func wantReason(tr *Tracer, reason string) string {
	if tr.HasReasons() {
		return reason
	}
	return NotSpecified
}

// checkDrops checks that got are exactly n drops of reason at location
// from saddr to daddr:dport on vb.
func checkDrops(t *testing.T, got []Event, n int, reason string, location []string, saddr, daddr string, dport uint16, netns uint32) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%d drops to %s port %d, want %d: %+v", len(got), daddr, dport, n, got)
	}
	for _, e := range got {
		if e.Reason != reason || !slices.Contains(location, e.Location) || e.Protocol != "UDP" ||
			e.Saddr != netip.MustParseAddr(saddr) || e.Daddr != netip.MustParseAddr(daddr) ||
			e.Dport != dport || e.Sport == 0 || e.Iface != "vb" || e.Netns != netns {
			t.Fatalf("drop %+v, want %s at %s, UDP %s -> %s:%d on vb in netns %d", e, reason, location, saddr, daddr, dport, netns)
		}
	}
}

// The function that frees a datagram to a closed port: __udp4_lib_rcv,
// or udp_rcv where the compiler inlined it into its caller (7.2's build).
var (
	udp4Locations = []string{"__udp4_lib_rcv", "udp_rcv"}
	udp6Locations = []string{"__udp6_lib_rcv", "udpv6_rcv"}
)

// TestNoSocket: n datagrams to a closed port give exactly n drops with
// reason NO_SOCKET, as many as the namespace's Udp NoPorts (Udp6NoPorts)
// counted, with their addresses, interface and namespace.
func TestNoSocket(t *testing.T) {
	tr := newTracer(t, Config{})
	p := newPair(t, true)
	const n = 20
	for _, c := range []struct {
		daddr, saddr, prefix, counter string
		location                      []string
		port                          uint16
	}{
		{p.b4, p.a4, "Udp", "NoPorts", udp4Locations, 9},
		{p.b6, p.a6, "", "Udp6NoPorts", udp6Locations, 10},
	} {
		stop := collect(t, tr, p.bInode, c.port)
		before := p.snmp(t, c.prefix, c.counter)
		send(t, p.a, c.daddr, int(c.port), n)
		got := stop(n)
		if d := p.snmp(t, c.prefix, c.counter) - before; d != n {
			t.Fatalf("%s %s rose by %d, want %d", c.prefix, c.counter, d, n)
		}
		checkDrops(t, got, n, wantReason(tr, "NO_SOCKET"), c.location, c.saddr, c.daddr, c.port, p.bInode)
	}
}

// TestNetfilter: n datagrams dropped by an nftables rule give n drops with
// the netfilter reason, at nf_hook_slow.
func TestNetfilter(t *testing.T) {
	tr := newTracer(t, Config{})
	p := newPair(t, false)
	p.b.Drop(t, "bpfkit_drops", testkit.DropRule{Proto: unix.IPPROTO_UDP, DstPort: 7777})
	const n = 20
	stop := collect(t, tr, p.bInode, 7777)
	send(t, p.a, p.b4, 7777, n)
	// nf_hook_slow frees what a hook drops; since 6.x (6.18 here) nf_tables
	// frees the packet its rule drops in nft_do_chain itself.
	checkDrops(t, stop(n), n, wantReason(tr, "NETFILTER_DROP"), []string{"nf_hook_slow", "nft_do_chain"}, p.a4, p.b4, 7777, p.bInode)
}

// TestSummary: in summary mode, kept to b's namespace, the kernel counts
// exactly the n datagrams a sends to a closed port in b: one row, NO_SOCKET
// where UDP frees them, as many as b's Udp NoPorts rose by. IPv6 is off and
// the neighbours are permanent, so nothing else reaches b; the n datagrams
// b sends to a closed port in a at the same time are drops in a, left out.
func TestSummary(t *testing.T) {
	p := newPair(t, false)
	tr := newTracer(t, Config{Summary: true, Netns: p.bInode})
	const n = 100
	if _, err := tr.Delta(); err != nil { // the baseline
		t.Fatal(err)
	}
	noports := p.b.Counter(t, "snmp", "Udp", "NoPorts")
	send(t, p.a, p.b4, 9, n)
	send(t, p.b, p.a4, 9, n)
	d := p.b.Counter(t, "snmp", "Udp", "NoPorts") - noports
	counts, err := tr.Delta()
	if err != nil {
		t.Fatal(err)
	}
	if d != n || len(counts) != 1 || counts[0].Reason != wantReason(tr, "NO_SOCKET") ||
		!slices.Contains(udp4Locations, counts[0].Location) || counts[0].Count != n {
		t.Fatalf("summary of b's namespace: %+v, b's Udp NoPorts rose by %d; want exactly {%s %v %d} and %d",
			counts, d, wantReason(tr, "NO_SOCKET"), udp4Locations, n, n)
	}
}

// TestNetnsFilter: a tracer kept to b's namespace reports exactly the n
// drops in b, not the n that b's datagrams cause in a at the same time.
func TestNetnsFilter(t *testing.T) {
	p := newPair(t, false)
	tr := newTracer(t, Config{Netns: p.bInode})
	const n = 20
	stop := collect(t, tr, 0, 0) // every drop the tracer reports
	send(t, p.a, p.b4, 9, n)
	send(t, p.b, p.a4, 9, n)
	checkDrops(t, stop(n), n, wantReason(tr, "NO_SOCKET"), udp4Locations, p.a4, p.b4, 9, p.bInode)
}
