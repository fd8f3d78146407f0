package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

// Every end to end test uses 198.18.0.0/15 and 2001:2::/48 (the IPv4 and
// IPv6 benchmarking ranges) inside namespaces it creates; traffic never
// leaves them.
const (
	addrA  = "198.18.0.1"
	addrB  = "198.18.0.2"
	addrA6 = "2001:2::1"
	addrC6 = "2001:2::11" // a second sender address in a
	addrB6 = "2001:2::2"
)

// settle is how long a receiver waits for stragglers: longer in an
// emulated VM.
func settle() time.Duration {
	if testkit.Emulated() {
		return 10 * time.Second
	}
	return 2 * time.Second
}

// pair is a sender namespace a and a receiver namespace b joined by a
// veth pair va (in a) and vb (in b).
type pair struct {
	a, b *testkit.NetNS
}

func newPair(t *testing.T) pair {
	t.Helper()
	testkit.RequireRoot(t)
	p := pair{a: testkit.NewNetNS(t, "xa"), b: testkit.NewNetNS(t, "xb")}
	testkit.Veth(t, p.a, "va", addrA+"/24", p.b, "vb", addrB+"/24")
	return p
}

// newPair6 is newPair with IPv6 addresses too (addrA6 and addrC6 on va,
// addrB6 on vb) and permanent neighbour entries for them both ways: no
// neighbour discovery crosses the veth for them, so ICMPv6 rules on these
// addresses see only the test's own packets. (Link-local ND, MLD and
// router solicitations still cross it: rules must leave fe80::/10 and
// ff00::/8 alone.)
func newPair6(t *testing.T) pair {
	t.Helper()
	p := newPair(t)
	macA, macB := p.a.MAC(t, "va"), p.b.MAC(t, "vb")
	for _, a := range []string{addrA6, addrC6} {
		p.a.AddAddr(t, "va", a+"/64")
		p.b.Neighbor(t, "vb", a, macA)
	}
	p.b.AddAddr(t, "vb", addrB6+"/64")
	p.a.Neighbor(t, "va", addrB6, macB)
	return p
}

// is6 reports whether addr is an IPv6 address.
func is6(addr string) bool { return net.ParseIP(addr).To4() == nil }

// attach attaches a filter to iface inside ns, detached at cleanup.
func attach(t *testing.T, ns *testkit.NetNS, iface string, opts Options) *Filter {
	t.Helper()
	var f *Filter
	if err := ns.Do(func() (err error) { f, err = Attach(iface, opts); return err }); err != nil {
		t.Fatal(err)
	}
	if f.Mode != ModeNative {
		t.Errorf("auto mode on veth gave %s, want native", f.Mode)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// udpSocket opens a UDP socket bound to addr:port (IPv4 or IPv6) inside ns.
func udpSocket(t *testing.T, ns *testkit.NetNS, addr string, port int) *net.UDPConn {
	t.Helper()
	network := "udp4"
	if is6(addr) {
		network = "udp6"
	}
	var c *net.UDPConn
	err := ns.Do(func() (err error) {
		c, err = net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(addr), Port: port})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A receive buffer that holds a whole test's datagrams, so a slow
	// reader (an emulated VM) never drops one: SO_RCVBUFFORCE, as root,
	// goes past net.core.rmem_max.
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	}); err != nil || serr != nil {
		t.Fatalf("receive buffer: %v %v", err, serr)
	}
	return c
}

// receiver collects the sequence numbers that arrive on c until stop.
type receiver struct {
	mu   sync.Mutex
	seen map[uint32]bool
	done chan struct{}
}

func receive(c *net.UDPConn) *receiver {
	r := &receiver{seen: map[uint32]bool{}, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 2048)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if n >= 4 {
				r.mu.Lock()
				r.seen[binary.BigEndian.Uint32(buf)] = true
				r.mu.Unlock()
			}
		}
	}()
	return r
}

func (r *receiver) count(from, to uint32) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for s := from; s < to; s++ {
		if r.seen[s] {
			n++
		}
	}
	return n
}

// waitFor polls cond for up to settle().
func waitFor(cond func() bool) bool {
	deadline := time.Now().Add(settle())
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

// sendUDP sends n datagrams numbered from seq to addr:port, paced so that
// no queue overflows.
func sendUDP(t *testing.T, c *net.UDPConn, addr string, port int, seq uint32, n int, size int) {
	t.Helper()
	buf := make([]byte, size)
	dst := &net.UDPAddr{IP: net.ParseIP(addr), Port: port}
	for i := range n {
		binary.BigEndian.PutUint32(buf, seq+uint32(i))
		if _, err := c.WriteToUDP(buf, dst); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			time.Sleep(time.Millisecond)
		}
	}
}

// passAndDrop sends n datagrams of size from addrA to addrB's port drop,
// then as many to its port pass, and checks that every one to pass is
// received and none to drop.
func passAndDrop(t *testing.T, p pair, pass, drop, n, size int) {
	t.Helper()
	send := udpSocket(t, p.a, addrA, 0)
	rp, rd := receive(udpSocket(t, p.b, addrB, pass)), receive(udpSocket(t, p.b, addrB, drop))
	sendUDP(t, send, addrB, drop, 0, n, size)
	sendUDP(t, send, addrB, pass, 0, n, size)
	if !waitFor(func() bool { return rp.count(0, uint32(n)) == n }) {
		t.Errorf("port %d: received %d of %d", pass, rp.count(0, uint32(n)), n)
	}
	if got := rd.count(0, uint32(n)); got != 0 {
		t.Errorf("port %d: received %d, want 0", drop, got)
	}
}

func ruleCount(t *testing.T, f *Filter, id uint32) Counter {
	t.Helper()
	s, err := f.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Rules {
		if r.ID == id {
			return r.Counter
		}
	}
	t.Fatalf("no rule %d", id)
	return Counter{}
}

// TestE2ETraffic: UDP, ICMP and TCP from one namespace to another; the
// receiver gets exactly what the rules let through and the counters equal
// what was sent.
func TestE2ETraffic(t *testing.T) {
	p := newPair(t)
	f := attach(t, p.b, "vb", Options{Rules: []Rule{
		mustRule(t, "--src 198.18.0.1 --proto udp --dport 5001 --action drop"), // 1
		mustRule(t, "--src 198.18.0.0/24 --proto icmp --action drop"),          // 2
		mustRule(t, "--dst 198.18.0.2 --proto tcp --dport 6001 --action drop"), // 3
		mustRule(t, "--src 198.18.0.1 --proto udp --dport 5002 --action pass"), // 4
	}})
	const n, size = 500, 100
	passAndDrop(t, p, 5002, 5001, n, size)
	frame := uint64(size + 8 + 20 + 14)
	if c := ruleCount(t, f, 1); c != (Counter{n, n * frame}) {
		t.Errorf("drop rule counted %+v, want %d packets, %d bytes", c, n, n*frame)
	}
	if c := ruleCount(t, f, 4); c.Packets != n {
		t.Errorf("pass rule counted %d, want %d", c.Packets, n)
	}

	// ICMP: echo requests get no reply, and the rule counts every one.
	if got := ping(t, p.a, addrA, addrB, 5); got != 0 {
		t.Errorf("%d ICMP echo replies through a drop rule", got)
	}
	if c := ruleCount(t, f, 2); c.Packets != 5 {
		t.Errorf("icmp rule counted %d, want 5", c.Packets)
	}
	if err := f.DeleteRule(2, Guard{}); err != nil {
		t.Fatal(err)
	}
	if got := ping(t, p.a, addrA, addrB, 5); got != 5 {
		t.Errorf("%d of 5 ICMP echo replies without the drop rule", got)
	}

	// TCP: the dropped port never connects; another port does.
	var ln net.Listener
	if err := p.b.Do(func() (err error) { ln, err = net.Listen("tcp4", addrB+":0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dial := func(port int) error {
		return p.a.Do(func() error {
			c, err := net.DialTimeout("tcp4", fmt.Sprintf("%s:%d", addrB, port), time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	if err := dial(6001); err == nil {
		t.Errorf("TCP to the dropped port 6001 connected")
	}
	if err := dial(ln.Addr().(*net.TCPAddr).Port); err != nil {
		t.Errorf("TCP to an open port: %v", err)
	}
	if c := ruleCount(t, f, 3); c.Packets == 0 {
		t.Errorf("tcp rule counted no SYN")
	}
}

// TestE2ETrafficIPv6: UDP and ICMPv6 over IPv6 from one namespace to
// another; the receiver gets exactly what the rules let through, the
// counters equal what was sent, and a /128 source rule beats a /64 one.
func TestE2ETrafficIPv6(t *testing.T) {
	p := newPair6(t)
	f := attach(t, p.b, "vb", Options{Rules: []Rule{
		// 1: the /64 drops port 5011, whatever its priority ...
		mustRule(t, "--src 2001:2::/64 --dst 2001:2::2 --proto udp --dport 5011 --priority -10 --action drop"),
		// 2
		mustRule(t, "--src 2001:2::/64 --proto udp --dport 5012 --action pass"),
		// 3: ... except from 2001:2::11: the longer source prefix wins
		mustRule(t, "--src 2001:2::11/128 --proto udp --action pass"),
		// 4: not link-local ND, MLD or router solicitations
		mustRule(t, "--src 2001:2::/64 --dst 2001:2::2 --proto icmpv6 --action drop"),
	}})
	fromA, fromC := udpSocket(t, p.a, addrA6, 0), udpSocket(t, p.a, addrC6, 0)
	r1, r2 := receive(udpSocket(t, p.b, addrB6, 5011)), receive(udpSocket(t, p.b, addrB6, 5012))
	const n, size = 500, 100
	sendUDP(t, fromA, addrB6, 5011, 0, n, size) // rule 1
	sendUDP(t, fromA, addrB6, 5012, 0, n, size) // rule 2
	sendUDP(t, fromC, addrB6, 5011, n, n, size) // rule 3
	if !waitFor(func() bool { return r2.count(0, n) == n && r1.count(n, 2*n) == n }) {
		t.Errorf("received %d of %d on port 5012, %d of %d from %s on port 5011",
			r2.count(0, n), n, r1.count(n, 2*n), n, addrC6)
	}
	if got := r1.count(0, n); got != 0 {
		t.Errorf("port 5011: received %d from %s, want 0", got, addrA6)
	}
	frame := uint64(size + 8 + 40 + 14)
	for id := uint32(1); id <= 3; id++ {
		if c := ruleCount(t, f, id); c != (Counter{n, n * frame}) {
			t.Errorf("rule %d counted %+v, want %d packets, %d bytes", id, c, n, n*frame)
		}
	}

	// ICMPv6: echo requests get no reply, and the rule counts every one.
	if got := ping(t, p.a, addrA6, addrB6, 5); got != 0 {
		t.Errorf("%d ICMPv6 echo replies through a drop rule", got)
	}
	if c, want := ruleCount(t, f, 4), (Counter{5, 5 * (8 + 40 + 14)}); c != want {
		t.Errorf("icmpv6 rule counted %+v, want %+v", c, want)
	}
	if err := f.DeleteRule(4, Guard{}); err != nil {
		t.Fatal(err)
	}
	if got := ping(t, p.a, addrA6, addrB6, 5); got != 5 {
		t.Errorf("%d of 5 ICMPv6 echo replies without the drop rule", got)
	}
	for id := uint32(1); id <= 3; id++ {
		if c := ruleCount(t, f, id); c.Packets != n {
			t.Errorf("rule %d counted %d after the pings, want %d", id, c.Packets, n)
		}
	}
	// The link-local traffic (ND, MLD with its hop-by-hop header, router
	// solicitations) went to the default, uncounted here, none of it
	// taken for malformed.
	s, err := f.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Malformed.Packets != 0 || s.DefaultDrop.Packets != 0 {
		t.Errorf("%d frames malformed, %d dropped by default, want none", s.Malformed.Packets, s.DefaultDrop.Packets)
	}
}

// TestE2EVLAN: IPv4 UDP in 802.1Q and 802.1ad+802.1Q (QinQ) frames; the
// program skips the tags and matches what is inside. VLAN sub-interfaces
// need the 8021q module (not in every kernel), and a veth would carry
// their tag out of band (TX VLAN offload), unseen by XDP, so namespace a
// sends the tagged frames through a packet socket. The tags are priority
// tags (VLAN id 0), which namespace b's stack strips and delivers to vb
// without a VLAN device.
func TestE2EVLAN(t *testing.T) {
	p := newPair(t)
	f := attach(t, p.b, "vb", Options{Rules: []Rule{
		mustRule(t, "--src 198.18.0.1 --proto udp --dport 5021 --action drop"),    // 1
		mustRule(t, "--src 198.18.0.0/24 --proto udp --dport 5022 --action pass"), // 2
	}})
	dropped, passed := receive(udpSocket(t, p.b, addrB, 5021)), receive(udpSocket(t, p.b, addrB, 5022))
	var fd int
	if err := p.a.Do(func() (err error) { fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0); return err }); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var va *net.Interface
	if err := p.a.Do(func() (err error) { va, err = net.InterfaceByName("va"); return err }); err != nil {
		t.Fatal(err)
	}
	vb := p.b.MAC(t, "vb")
	to := &unix.SockaddrLinklayer{Ifindex: va.Index, Halen: 6}
	copy(to.Addr[:], vb)
	const n, size = 300, 100
	send := func(tpids []uint16, port int, seq uint32) {
		t.Helper()
		for i := range n {
			b := vlanUDP(vb, va.HardwareAddr, tpids, port, seq+uint32(i), size)
			if err := unix.Sendto(fd, b, 0, to); err != nil {
				t.Fatal(err)
			}
			if i%10 == 9 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	dot1q, qinq := []uint16{0x8100}, []uint16{0x88a8, 0x8100}
	send(dot1q, 5021, 0)
	send(dot1q, 5022, 0)
	send(qinq, 5021, n)
	send(qinq, 5022, n)
	if !waitFor(func() bool { return passed.count(0, 2*n) == 2*n }) {
		t.Errorf("port 5022: received %d of %d", passed.count(0, 2*n), 2*n)
	}
	if got := dropped.count(0, 2*n); got != 0 {
		t.Errorf("port 5021: received %d, want 0", got)
	}
	frames := uint64(n*(14+4+20+8+size) + n*(14+8+20+8+size))
	for id := uint32(1); id <= 2; id++ {
		if c := ruleCount(t, f, id); c != (Counter{2 * n, frames}) {
			t.Errorf("rule %d counted %+v, want %d packets, %d bytes", id, c, 2*n, frames)
		}
	}
}

// vlanUDP builds an Ethernet frame from addrA to addrB with VLAN tags of
// the given TPIDs (outer first, VLAN id 0) and a UDP datagram numbered seq
// (no UDP checksum, which IPv4 allows).
func vlanUDP(dst, src net.HardwareAddr, tpids []uint16, port int, seq uint32, size int) []byte {
	b := append(append([]byte{}, dst...), src...)
	for _, tpid := range tpids {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, 0)
	}
	b = binary.BigEndian.AppendUint16(b, 0x0800)
	ip := len(b)
	b = append(b, 0x45, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(20+8+size))
	b = append(b, 0, 0, 0x40, 0, 64, 17, 0, 0) // id, DF, TTL, UDP, checksum
	b = append(b, net.ParseIP(addrA).To4()...)
	b = append(b, net.ParseIP(addrB).To4()...)
	binary.BigEndian.PutUint16(b[ip+10:], checksum(b[ip:]))
	b = binary.BigEndian.AppendUint16(b, 40000)
	b = binary.BigEndian.AppendUint16(b, uint16(port))
	b = binary.BigEndian.AppendUint16(b, uint16(8+size))
	b = append(b, 0, 0)
	payload := make([]byte, size)
	binary.BigEndian.PutUint32(payload, seq)
	return append(b, payload...)
}

// TestE2ERulesChangeUnderTraffic adds and deletes a rule while a sender
// runs: what is sent while the rule is in place is dropped, the rest gets
// through, the default counter equals what was received, and the rule's
// counter equals what was lost: at least its value just before the
// delete, at most that plus what was sent during the delete. The receiver
// loses nothing (16 MiB socket buffer), so every packet sent is either
// received or dropped by the rule.
func TestE2ERulesChangeUnderTraffic(t *testing.T) {
	p := newPair(t)
	// Link-local IPv6 (router solicitations, MLD, DAD) goes to this rule,
	// not to the default, which then counts the test's datagrams only.
	f := attach(t, p.b, "vb", Options{Rules: []Rule{mustRule(t, "--src ::/0 --action pass")}})
	send := udpSocket(t, p.a, addrA, 0)
	r := receive(udpSocket(t, p.b, addrB, 5003))

	var (
		mu                    sync.Mutex
		seq                   uint32
		addedAt, deletingAt   uint32
		deletedAt, stopSeqEnd uint32
	)
	stop := make(chan struct{})
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		buf := make([]byte, 64)
		dst := &net.UDPAddr{IP: net.ParseIP(addrB), Port: 5003}
		deadline := time.Now().Add(20 * time.Second)
		for i := 0; i < 100_000 && time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			binary.BigEndian.PutUint32(buf, seq)
			_, err := send.WriteToUDP(buf, dst)
			seq++
			mu.Unlock()
			if err != nil {
				return
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	now := func() uint32 { mu.Lock(); defer mu.Unlock(); return seq }
	time.Sleep(100 * time.Millisecond)
	var rule Rule
	if err := p.b.Do(func() (err error) {
		rule, err = f.AddRule(mustRule(t, "--proto udp --dport 5003 --action drop"), Guard{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	addedAt = now()
	time.Sleep(200 * time.Millisecond)
	// The rule's counter just before the delete: the sender waits (mu)
	// until every datagram it sent is received or counted, so none is in
	// flight when the counter is read.
	mu.Lock()
	deletingAt = seq
	var before uint64
	settled := waitFor(func() bool {
		before = ruleCount(t, f, rule.ID).Packets
		return int(before)+r.count(0, deletingAt) == int(deletingAt)
	})
	mu.Unlock()
	if !settled {
		t.Fatalf("of %d sent, %d received and %d dropped by the rule", deletingAt, r.count(0, deletingAt), before)
	}
	if err := f.DeleteRule(rule.ID, Guard{}); err != nil {
		t.Fatal(err)
	}
	deletedAt = now()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	<-senderDone
	stopSeqEnd = now()
	if deletingAt-addedAt < 10 || stopSeqEnd-deletedAt < 10 {
		t.Fatalf("the sender was too slow: %d packets with the rule, %d after", deletingAt-addedAt, stopSeqEnd-deletedAt)
	}
	if !waitFor(func() bool { return r.count(deletedAt, stopSeqEnd) == int(stopSeqEnd-deletedAt) }) {
		t.Errorf("after delete: received %d of %d", r.count(deletedAt, stopSeqEnd), stopSeqEnd-deletedAt)
	}
	if got := r.count(addedAt, deletingAt); got != 0 {
		t.Errorf("while the rule was in place: received %d of %d", got, deletingAt-addedAt)
	}
	received := r.count(0, stopSeqEnd)
	lost := uint64(int(stopSeqEnd) - received)
	s, err := f.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// Each datagram: 64 bytes of payload, UDP, IPv4 and Ethernet headers.
	if want := (Counter{uint64(received), uint64(received) * (64 + 8 + 20 + 14)}); s.DefaultPass != want || s.DefaultDrop != (Counter{}) {
		t.Errorf("default pass counted %+v, drop %+v, but %d were received: want %+v and none", s.DefaultPass, s.DefaultDrop, received, want)
	}
	if lost < before || lost > before+uint64(deletedAt-deletingAt) {
		t.Errorf("%d lost: want from %d (the rule's count before the delete) to %d (plus the %d sent during it)",
			lost, before, before+uint64(deletedAt-deletingAt), deletedAt-deletingAt)
	}
	// The deleted rule's counter slot stays as the last packet left it
	// (ids are never reused): exactly what was lost.
	var per []counter
	if err := f.maps.RuleStats.Lookup(rule.ID, &per); err != nil {
		t.Fatal(err)
	}
	if c := sum(per).Packets; c != lost {
		t.Errorf("the deleted rule counted %d, but %d were lost", c, lost)
	}
}

// TestE2EPolicyAllow: under an allow policy, datagrams no rule passes are
// dropped by default, and the default drop counts each one with its bytes,
// as a rule does.
func TestE2EPolicyAllow(t *testing.T) {
	p := newPair(t)
	// Force: the allow policy is a hazard on an interface an operator
	// may need; vb is the test's own, in its own namespace.
	f := attach(t, p.b, "vb", Options{Policy: PolicyAllow, Guard: Guard{Force: true}, Rules: []Rule{
		// 1: link-local IPv6 (router solicitations, MLD, DAD): not to
		// the default, which then counts the test's datagrams only.
		mustRule(t, "--src ::/0 --action pass"),
		mustRule(t, "--src 198.18.0.1 --proto udp --dport 5005 --action pass"), // 2
	}})
	const n, size = 300, 100
	passAndDrop(t, p, 5005, 5006, n, size)
	want := Counter{n, n * (size + 8 + 20 + 14)}
	if c := ruleCount(t, f, 2); c != want {
		t.Errorf("pass rule counted %+v, want %+v", c, want)
	}
	s, err := f.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.DefaultDrop != want || s.DefaultPass != (Counter{}) || s.Malformed != (Counter{}) {
		t.Errorf("default drop counted %+v, default pass %+v, malformed %+v: want %+v, none and none", s.DefaultDrop, s.DefaultPass, s.Malformed, want)
	}
}

// TestE2ERedirect: packets arriving in namespace b are redirected out of a
// second veth into namespace c, where a socket receives every one.
func TestE2ERedirect(t *testing.T) {
	p := newPair(t)
	c := testkit.NewNetNS(t, "xc")
	testkit.Veth(t, p.b, "vb2", "", c, "vc", addrB+"/24")
	// vc takes vb's MAC, so the redirected frames are addressed to it.
	c.SetMAC(t, "vc", p.b.MAC(t, "vb"))
	f := attach(t, p.b, "vb", Options{Rules: []Rule{mustRule(t, "--src 198.18.0.1 --proto udp --dport 5004 --action redirect:vb2")}})
	// A veth accepts redirected frames only if its peer runs XDP.
	if err := c.Do(func() error {
		l, err := netlink.LinkByName("vc")
		if err != nil {
			return err
		}
		pass, err := link.AttachXDP(link.XDPOptions{Program: f.coll.Programs["xdp_pass"], Interface: l.Attrs().Index})
		if err == nil {
			t.Cleanup(func() { pass.Close() })
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	inB, inC := receive(udpSocket(t, p.b, addrB, 5004)), receive(udpSocket(t, c, addrB, 5004))
	send := udpSocket(t, p.a, addrA, 0)
	// Locally sent datagrams leave the checksum to the (veth) NIC, which an
	// XDP redirect skips: send them without one, as UDP over IPv4 allows.
	raw, err := send.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	const n = 300
	sendUDP(t, send, addrB, 5004, 0, n, 64)
	if !waitFor(func() bool { return inC.count(0, n) == n }) {
		t.Errorf("namespace c received %d of %d", inC.count(0, n), n)
	}
	if got := inB.count(0, n); got != 0 {
		t.Errorf("namespace b received %d, want 0 (all redirected)", got)
	}
	if cnt := ruleCount(t, f, 1); cnt.Packets != n {
		t.Errorf("redirect rule counted %d, want %d", cnt.Packets, n)
	}
}

// TestE2EDetach: Close of a foreground filter leaves no XDP program on the
// interface; attaching over another program fails naming it.
func TestE2EDetach(t *testing.T) {
	p := newPair(t)
	f := attach(t, p.b, "vb", Options{})
	err := p.b.Do(func() error { _, err := Attach("vb", Options{}); return err })
	// The filter of this process is a foreground one, as `bpfkit xdp run`'s.
	if want := fmt.Sprintf("vb is held by `bpfkit xdp run` (pid %d) in the foreground: stop it first (Ctrl-C there, or kill %d)", os.Getpid(), os.Getpid()); err == nil || err.Error() != want {
		t.Fatalf("second attach: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.b.Do(func() error {
		l, err := netlink.LinkByName("vb")
		if err != nil {
			return err
		}
		if x := l.Attrs().Xdp; x != nil && x.Attached {
			return errors.New("an XDP program is still attached after Close")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	err = p.b.Do(func() error { _, err := Attach("nope0", Options{}); return err })
	if err == nil || err.Error() != `interface "nope0" not found (`+"`ip link`"+` lists the interfaces)` {
		t.Fatalf("unknown interface: %v", err)
	}
}

// ping sends n ICMP (or ICMPv6) echo requests from src to dst inside ns
// and returns how many replies came back, waiting at most settle() after
// the last request.
func ping(t *testing.T, ns *testkit.NetNS, src, dst string, n int) int {
	t.Helper()
	network, request, reply := "ip4:icmp", byte(8), byte(0)
	if is6(src) {
		// The kernel computes ICMPv6 checksums on raw sockets.
		network, request, reply = "ip6:ipv6-icmp", 128, 129
	}
	var c net.PacketConn
	if err := ns.Do(func() (err error) { c, err = net.ListenPacket(network, src); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := &net.IPAddr{IP: net.ParseIP(dst)}
	for i := range n {
		msg := []byte{request, 0, 0, 0, 0x12, 0x34, 0, byte(i + 1)}
		if !is6(src) {
			binary.BigEndian.PutUint16(msg[2:], checksum(msg))
		}
		if _, err := c.WriteTo(msg, to); err != nil {
			t.Fatal(err)
		}
	}
	replies := 0
	buf := make([]byte, 1500)
	c.SetReadDeadline(time.Now().Add(settle()))
	for replies < n {
		m, _, err := c.ReadFrom(buf)
		if err != nil {
			return replies
		}
		// Go strips the IP header; the socket also sees other ICMP.
		if m >= 8 && buf[0] == reply && buf[4] == 0x12 && buf[5] == 0x34 {
			replies++
		}
	}
	return replies
}

// checksum is the Internet checksum of b (of even length).
func checksum(b []byte) uint16 {
	sum := uint32(0)
	for j := 0; j+1 < len(b); j += 2 {
		sum += uint32(b[j])<<8 | uint32(b[j+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
