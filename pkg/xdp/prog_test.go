package xdp

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }

const (
	xdpAborted  = 0
	xdpDrop     = 1
	xdpPass     = 2
	xdpRedirect = 4
)

func load(t *testing.T, policy Policy, rules []Rule) *Filter {
	t.Helper()
	testkit.RequireRoot(t)
	f, err := Load(Options{Policy: policy, Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func run(t *testing.T, f *Filter, fr frame) uint32 {
	t.Helper()
	ret, err := f.Program().Run(&ebpf.RunOptions{Data: fr.bytes()})
	if err != nil {
		t.Fatal(err)
	}
	return ret
}

func mustRule(t *testing.T, line string) Rule {
	t.Helper()
	r, err := ParseRule(line)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var (
	a4 = netip.MustParseAddr("198.18.1.7")
	b4 = netip.MustParseAddr("198.19.0.1")
	a6 = netip.MustParseAddr("2001:db8:1::7")
	b6 = netip.MustParseAddr("2001:db8:2::1")
)

// TestRuleTypes runs one frame of each kind through the real program.
func TestRuleTypes(t *testing.T) {
	rules := []Rule{
		mustRule(t, "--src 198.18.1.0/24 --proto udp --dport 53 --action drop"),               // 1
		mustRule(t, "--dst 198.19.0.0/16 --proto tcp --sport 1000-2000 --action drop"),        // 2
		mustRule(t, "--src 2001:db8:1::/48 --dst 2001:db8:2::1 --action drop"),                // 3
		mustRule(t, "--proto icmp --action drop"),                                             // 4
		mustRule(t, "--src 2001:db8:9::/48 --proto icmpv6 --action drop"),                     // 5
		mustRule(t, "--src 198.18.1.7 --dst 198.19.0.1 --proto tcp --dport 22 --action pass"), // 6
		mustRule(t, "--dport 8080 --action drop"),                                             // 7: tcp or udp
		mustRule(t, "--proto 47 --action drop"),                                               // 8: GRE
	}
	f := load(t, PolicyDeny, rules)
	c6 := netip.MustParseAddr("2001:db8:9::1")
	for _, tc := range []struct {
		name string
		fr   frame
		want uint32
		rule uint32 // 0: the default action
	}{
		{"udp 53 from the /24", frame{packet: packet{src: a4, dst: b4, proto: ProtoUDP, sport: 5, dport: 53}}, xdpDrop, 1},
		{"udp 54 from the /24", frame{packet: packet{src: a4, dst: b4, proto: ProtoUDP, sport: 5, dport: 54}}, xdpPass, 0},
		{"tcp 53 from the /24", frame{packet: packet{src: a4, dst: b4, proto: ProtoTCP, sport: 5, dport: 53}}, xdpPass, 0},
		{"tcp sport range", frame{packet: packet{src: b4, dst: b4, proto: ProtoTCP, sport: 1500, dport: 1}}, xdpDrop, 2},
		{"tcp sport outside", frame{packet: packet{src: b4, dst: b4, proto: ProtoTCP, sport: 2001, dport: 1}}, xdpPass, 0},
		{"v6 src and dst", frame{packet: packet{src: a6, dst: b6, proto: ProtoUDP, sport: 1, dport: 2}}, xdpDrop, 3},
		{"v6 other dst", frame{packet: packet{src: a6, dst: a6, proto: ProtoUDP, sport: 1, dport: 2}}, xdpPass, 0},
		{"icmp", frame{packet: packet{src: b4, dst: a4, proto: ProtoICMP}}, xdpDrop, 4},
		{"icmpv6 from the /48", frame{packet: packet{src: c6, dst: a6, proto: ProtoICMPv6}}, xdpDrop, 5},
		{"icmpv6 elsewhere", frame{packet: packet{src: b6, dst: a6, proto: ProtoICMPv6}}, xdpPass, 0},
		{"most specific wins", frame{packet: packet{src: a4, dst: b4, proto: ProtoTCP, sport: 1500, dport: 22}}, xdpPass, 6},
		{"port without proto, udp", frame{packet: packet{src: b4, dst: a4, proto: ProtoUDP, sport: 1, dport: 8080}}, xdpDrop, 7},
		{"port without proto, tcp v6", frame{packet: packet{src: b6, dst: a6, proto: ProtoTCP, sport: 1, dport: 8080}}, xdpDrop, 7},
		{"number proto", frame{packet: packet{src: b6, dst: a6, proto: 47}}, xdpDrop, 8},
		{"802.1Q", frame{packet: packet{src: a4, dst: b4, proto: ProtoUDP, sport: 5, dport: 53}, vlans: []uint16{0x8100}}, xdpDrop, 1},
		{"QinQ", frame{packet: packet{src: a6, dst: b6, proto: ProtoTCP, sport: 5, dport: 53}, vlans: []uint16{0x88a8, 0x8100}}, xdpDrop, 3},
		{"IPv4 options", frame{packet: packet{src: a4, dst: b4, proto: ProtoUDP, sport: 5, dport: 53}, ipOptions: 12}, xdpDrop, 1},
		{"IPv6 extension headers", frame{packet: packet{src: b6, dst: a6, proto: ProtoUDP, sport: 5, dport: 8080}, ext: []uint8{0, 60, 43, 44}}, xdpDrop, 7},
		{"v4 fragment has no ports", frame{packet: packet{src: a4, dst: b4, proto: ProtoUDP, frag: true}}, xdpPass, 0},
		{"v6 fragment has no ports", frame{packet: packet{src: b6, dst: a6, proto: ProtoUDP, frag: true}}, xdpPass, 0},
		{"v6 fragment matches addresses", frame{packet: packet{src: a6, dst: b6, proto: ProtoUDP, frag: true}}, xdpDrop, 3},
	} {
		before, err := f.Stats()
		if err != nil {
			t.Fatal(err)
		}
		got := run(t, f, tc.fr)
		if got != tc.want {
			t.Errorf("%s: verdict %d, want %d", tc.name, got, tc.want)
			continue
		}
		after, err := f.Stats()
		if err != nil {
			t.Fatal(err)
		}
		one := Counter{1, uint64(len(tc.fr.bytes()))}
		for i, r := range after.Rules {
			if d, want := r.Counter.minus(before.Rules[i].Counter), one.when(r.ID == tc.rule); d != want {
				t.Errorf("%s: rule %d counted %+v, want %+v", tc.name, r.ID, d, want)
			}
		}
		// The frames no rule matches go to the default (pass: a deny
		// policy), counted as the rules' are.
		if d, want := after.DefaultPass.minus(before.DefaultPass), one.when(tc.rule == 0); d != want {
			t.Errorf("%s: default pass counted %+v, want %+v", tc.name, d, want)
		}
		if after.DefaultDrop != (Counter{}) {
			t.Errorf("%s: default drop counted %+v under a deny policy", tc.name, after.DefaultDrop)
		}
	}
}

// minus is what c counted since o.
func (c Counter) minus(o Counter) Counter { return Counter{c.Packets - o.Packets, c.Bytes - o.Bytes} }

// when is c if cond holds, else zero.
func (c Counter) when(cond bool) Counter {
	if cond {
		return c
	}
	return Counter{}
}

// TestMalformed: truncated frames are dropped and counted, never matched.
func TestMalformed(t *testing.T) {
	f := load(t, PolicyDeny, []Rule{mustRule(t, "--action pass")})
	frames := []frame{
		{packet: packet{src: a4, dst: b4, proto: ProtoTCP}, truncate: 1},                          // TCP header cut
		{packet: packet{src: a4, dst: b4, proto: ProtoUDP}, truncate: 8},                          // no UDP header
		{packet: packet{src: a4, dst: b4, proto: ProtoUDP}, ipOptions: 40, truncate: 8 + 30},      // options cut
		{packet: packet{src: a4, dst: b4, proto: ProtoUDP}, badVersion: true},                     // IP version 5
		{packet: packet{src: a6, dst: b6, proto: ProtoUDP}, truncate: 8 + 1},                      // IPv6 header cut
		{packet: packet{src: a6, dst: b6, proto: ProtoUDP}, ext: []uint8{0, 60}, truncate: 8 + 4}, // ext header cut
		{packet: packet{src: a6, dst: b6, proto: ProtoICMPv6}, truncate: 5},                       // ICMPv6 cut
		{packet: packet{src: a4, dst: b4, proto: ProtoUDP}, vlans: []uint16{0x8100}, truncate: 28},
	}
	var bytes uint64
	for i, fr := range frames {
		if got := run(t, f, fr); got != xdpDrop {
			t.Errorf("frame %d: verdict %d, want drop", i, got)
		}
		bytes += uint64(len(fr.bytes()))
	}
	// Not IP: passed, counted apart, not matched.
	arp := frame{etherType: 0x0806}
	if got := run(t, f, arp); got != xdpPass {
		t.Errorf("ARP: verdict %d, want pass", got)
	}
	s, err := f.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Malformed != (Counter{uint64(len(frames)), bytes}) {
		t.Errorf("malformed counter %+v, want %d packets %d bytes", s.Malformed, len(frames), bytes)
	}
	if s.NonIP.Packets != 1 || s.Rules[0].Packets != 0 {
		t.Errorf("non-IP %+v, rule %+v", s.NonIP, s.Rules[0])
	}
}

// TestOverlap: the documented order decides between rules that all match.
func TestOverlap(t *testing.T) {
	p := frame{packet: packet{src: a4, dst: b4, proto: ProtoTCP, sport: 40000, dport: 443}}
	for _, tc := range []struct {
		name  string
		rules []string
		win   int // index of the winning rule, -1 for none
	}{
		{"longer source prefix wins", []string{"--src 198.18.0.0/15 --action drop", "--src 198.18.1.0/24 --action pass"}, 1},
		{"source before destination", []string{"--dst 198.19.0.1/32 --action drop", "--src 198.18.0.0/16 --action pass"}, 1},
		{"longer destination prefix wins", []string{"--src 198.18.0.0/16 --dst 198.19.0.0/16 --action drop", "--src 198.18.0.0/16 --dst 198.19.0.0/24 --action pass"}, 1},
		{"then lower priority", []string{"--src 198.18.1.0/24 --priority 5 --action drop", "--src 198.18.1.0/24 --dport 443 --priority 2 --action pass"}, 1},
		{"then a protocol over none", []string{"--src 198.18.1.0/24 --action drop", "--src 198.18.1.0/24 --proto tcp --action pass"}, 1},
		{"then narrower ports", []string{"--proto tcp --dport 1-1000 --action drop", "--proto tcp --dport 443 --action pass"}, 1},
		{"then the older rule", []string{"--proto tcp --dport 443 --action drop", "--proto tcp --dport 443 --action pass"}, 0},
		{"a rule that does not match never wins", []string{"--src 198.18.1.7 --dport 80 --action drop", "--src 198.18.0.0/15 --action pass"}, 1},
		{"AND: all fields must match", []string{"--src 198.18.1.7 --proto udp --action drop"}, -1},
	} {
		var rules []Rule
		for _, l := range tc.rules {
			rules = append(rules, mustRule(t, l))
		}
		f := load(t, PolicyDeny, rules)
		got := run(t, f, p)
		s, err := f.Stats()
		if err != nil {
			t.Fatal(err)
		}
		want, winner := uint32(xdpPass), uint32(0)
		if tc.win >= 0 {
			want = map[ActionKind]uint32{Drop: xdpDrop, Pass: xdpPass}[rules[tc.win].Action.Kind]
			winner = uint32(tc.win + 1)
		}
		if got != want {
			t.Errorf("%s: verdict %d, want %d", tc.name, got, want)
		}
		for _, r := range s.Rules {
			if (r.ID == winner) != (r.Packets == 1) {
				t.Errorf("%s: rule %d counted %d", tc.name, r.ID, r.Packets)
			}
		}
		f.Close()
	}
}

// TestPolicyAllowAndReplace: unmatched packets are dropped under allow, and
// a replaced rule set takes effect at once.
func TestPolicyAllowAndReplace(t *testing.T) {
	f := load(t, PolicyAllow, []Rule{mustRule(t, "--src 198.18.1.7 --proto udp --dport 53 --action pass")})
	dns := frame{packet: packet{src: a4, dst: b4, proto: ProtoUDP, sport: 9, dport: 53}}
	other := frame{packet: packet{src: b4, dst: a4, proto: ProtoUDP, sport: 9, dport: 53}}
	if got := run(t, f, dns); got != xdpPass {
		t.Fatalf("allowed packet: %d", got)
	}
	if got := run(t, f, other); got != xdpDrop {
		t.Fatalf("unmatched packet: %d", got)
	}
	size := uint64(len(other.bytes()))
	if s, err := f.Stats(); err != nil {
		t.Fatal(err)
	} else if s.DefaultDrop != (Counter{1, size}) || s.DefaultPass != (Counter{}) || s.Rules[0].Counter != (Counter{1, size}) {
		t.Fatalf("stats: %+v, want the rule and the default drop at 1 packet, %d bytes each", s, size)
	}
	if err := f.ReplaceRules([]Rule{mustRule(t, "--src 198.19.0.1 --action pass")}, Guard{}); err != nil {
		t.Fatal(err)
	}
	if got := run(t, f, dns); got != xdpDrop {
		t.Fatalf("after replace, old rule still matches: %d", got)
	}
	if got := run(t, f, other); got != xdpPass {
		t.Fatalf("after replace, new rule does not match: %d", got)
	}
	s, err := f.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// Ids are never reused: the replacing rule is 2, not 1 again. dns and
	// other are the same size.
	if len(s.Rules) != 1 || s.Rules[0].ID != 2 || s.Rules[0].Counter != (Counter{1, size}) ||
		s.DefaultDrop != (Counter{2, 2 * size}) || s.DefaultPass != (Counter{}) {
		t.Fatalf("stats after replace: %+v, want rule 2 at 1 packet and the default drop at 2, of %d bytes each", s, size)
	}
	// Added and deleted rules.
	added, err := f.AddRule(mustRule(t, "--proto udp --action drop"), Guard{})
	if err != nil {
		t.Fatal(err)
	}
	if added.ID != 3 {
		t.Fatalf("new rule id %d, want 3", added.ID)
	}
	if got := run(t, f, other); got != xdpPass {
		t.Fatalf("source rule should win over protocol rule: %d", got)
	}
	if err := f.DeleteRule(2, Guard{}); err != nil {
		t.Fatal(err)
	}
	if got := run(t, f, other); got != xdpDrop {
		t.Fatalf("after delete: %d", got)
	}
	// Every table holds only the live generation.
	live, err := f.config()
	if err != nil {
		t.Fatal(err)
	}
	var mk matchKey
	var mv verdict
	n := 0
	for it := f.maps.Matches.Iterate(); it.Next(&mk, &mv); n++ {
		if mk.Gen != live.Gen {
			t.Errorf("matches holds generation %d, live is %d", mk.Gen, live.Gen)
		}
	}
	if n != 1 {
		t.Errorf("matches has %d entries, want 1", n)
	}
}

// TestRedirectVerdict: a redirect rule returns XDP_REDIRECT.
func TestRedirectVerdict(t *testing.T) {
	f := load(t, PolicyDeny, []Rule{{Src: netip.MustParsePrefix("198.18.0.0/15"), Action: Action{Kind: Redirect, Iface: "lo"}}})
	if got := run(t, f, frame{packet: packet{src: a4, dst: b4, proto: ProtoUDP, sport: 1, dport: 2}}); got != xdpRedirect {
		t.Fatalf("verdict %d, want redirect", got)
	}
	if _, err := Load(Options{Rules: []Rule{{Action: Action{Kind: Redirect, Iface: "bpfkit-nope0"}}}}); err == nil ||
		err.Error() != `redirect target: interface "bpfkit-nope0" not found (`+"`ip link`"+` lists the interfaces)` {
		t.Fatalf("missing redirect target: %v", err)
	}
}

// TestRandomAgainstReference runs random frames through the real program
// with random overlapping rule sets and compares with a scan of the rules.
func TestRandomAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rounds := 20
	if testing.Short() {
		rounds = 4 // emulated VMs (vmtest -short): the same checks, fewer rule sets
	}
	for round := range rounds {
		rules := randomRules(rng, 1+rng.IntN(60))
		f := load(t, PolicyDeny, rules)
		for range 200 {
			p := randomPacket(rng)
			if p.proto == ProtoICMPv6 && p.src.Is4() || p.proto == ProtoICMP && p.src.Is6() {
				continue
			}
			want := uint32(xdpPass)
			if r := reference(rules, p); r != nil && r.Action.Kind == Drop {
				want = xdpDrop
			}
			if got := run(t, f, frame{packet: p}); got != want {
				t.Fatalf("round %d: %+v: verdict %d, want %d (rule %s)", round, p, got, want, ruleStr(reference(rules, p)))
			}
		}
		f.Close()
	}
}

// Test100kRules loads 100,000 CIDR+port rules.
func Test100kRules(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("slow")
	}
	rules := manyRules(100_000)
	f := load(t, PolicyDeny, rules)
	for _, i := range []int{0, 777, 99_999} {
		r := rules[i]
		p := frame{packet: packet{src: r.Src.Addr(), dst: b4, proto: ProtoUDP, sport: 1, dport: r.DPort.Lo}}
		if got := run(t, f, p); got != xdpDrop {
			t.Fatalf("rule %d: verdict %d", i, got)
		}
		p.dport++
		if got := run(t, f, p); got != xdpPass {
			t.Fatalf("rule %d, other port: verdict %d", i, got)
		}
	}
}

// TestManyPrefixLengths: with more distinct prefix lengths than the
// per-length hashes take, the program uses the LPM tries; both agree with
// the reference.
func TestManyPrefixLengths(t *testing.T) {
	for _, lengths := range [][]int{{8, 16, 24, 32}, {4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32}} {
		var rules []Rule
		for i, l := range lengths {
			kind := ActionKind(i % 2)
			rules = append(rules,
				Rule{Src: netip.PrefixFrom(a4, l).Masked(), Action: Action{Kind: kind}},
				Rule{Dst: netip.PrefixFrom(b4, l).Masked(), Proto: ProtoUDP, Action: Action{Kind: 1 - kind}},
				Rule{Src: netip.PrefixFrom(a6, l*4).Masked(), Action: Action{Kind: kind}},
				Rule{Dst: netip.PrefixFrom(b6, l*4).Masked(), DPort: PortRange{53, 53}, Action: Action{Kind: 1 - kind}})
		}
		for i := range rules {
			rules[i].ID = uint32(i + 1)
		}
		f := load(t, PolicyDeny, rules)
		rng := rand.New(rand.NewPCG(5, 6))
		flip := func(a netip.Addr) netip.Addr {
			b := a.AsSlice()
			bit := rng.IntN(len(b) * 8)
			b[bit/8] ^= 0x80 >> (bit % 8)
			x, _ := netip.AddrFromSlice(b)
			return x
		}
		for range 400 {
			p := packet{src: a4, dst: b4, proto: ProtoUDP, sport: 1, dport: 53}
			if rng.IntN(2) == 0 {
				p.src, p.dst = a6, b6
			}
			p.src, p.dst = flip(p.src), flip(p.dst)
			want := uint32(xdpPass)
			if r := reference(rules, p); r != nil && r.Action.Kind == Drop {
				want = xdpDrop
			}
			if got := run(t, f, frame{packet: p}); got != want {
				t.Fatalf("lengths %v: %v -> %v: verdict %d, want %d (%s)", lengths, p.src, p.dst, got, want, ruleStr(reference(rules, p)))
			}
		}
		f.Close()
	}
}
