package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

// metrics scrapes serve's /metrics and sums, per metric name, the samples
// whose labels contain every one of want (`iface="x"`).
func metrics(t *testing.T, addr string, want ...string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		name, labels, _ := strings.Cut(series, "{")
		matched := true
		for _, w := range want {
			matched = matched && strings.Contains(labels, w)
		}
		if !matched {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestServeNet: serve's packet-path metrics. n datagrams to a closed port
// across a veth whose receiving end has a name no other interface has:
// bpfkit_netrx_packets_total{iface=NAME} summed over the CPUs rises by
// exactly n (IPv6 is off, so nothing else crosses the link);
// bpfkit_drops_total{reason="NO_SOCKET"} rises by at least n (it counts
// the whole machine: datagrams to closed ports elsewhere only add);
// bpfkit_softirq_seconds_total{vector="NET_RX"} grows.
func TestServeNet(t *testing.T) {
	testkit.RequireRoot(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startServe(t, addr, "--tools", "drops,softirqs,netrx")
	iface := fmt.Sprintf("bkrx%d", os.Getpid()%1000000)
	a, b := testkit.NewNetNS(t, "sna"), testkit.NewNetNS(t, "snb")
	a.NoIPv6(t)
	b.NoIPv6(t)
	testkit.Veth(t, a, "va", "198.18.15.1/24", b, iface, "198.18.15.2/24")
	// Permanent neighbours both ways: no ARP crosses the link (b answers
	// each datagram with an ICMP port unreachable).
	a.Neighbor(t, "va", "198.18.15.2", b.MAC(t, iface))
	b.Neighbor(t, iface, "198.18.15.1", a.MAC(t, "va"))

	reason := "NO_SOCKET"
	if !testkit.KernelAtLeast(5, 17) {
		reason = "NOT_SPECIFIED" // no reasons before 5.17
	}
	rx := `iface="` + iface + `"`
	before := metrics(t, addr, `reason="`+reason+`"`)["bpfkit_drops_total"]
	softirq := metrics(t, addr, `vector="NET_RX"`)["bpfkit_softirq_seconds_total"]
	const n = 30
	sendUDP(t, a, n)
	var got float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = metrics(t, addr, rx)["bpfkit_netrx_packets_total"]; got >= n {
			break
		}
	}
	time.Sleep(300 * time.Millisecond) // anything extra would show now
	if got = metrics(t, addr, rx)["bpfkit_netrx_packets_total"]; got != n {
		t.Errorf("bpfkit_netrx_packets_total{%s} = %v, want %d", rx, got, n)
	}
	if d := metrics(t, addr, `reason="`+reason+`"`)["bpfkit_drops_total"] - before; d < n {
		t.Errorf("bpfkit_drops_total{reason=%q} rose by %v, want at least %d", reason, d, n)
	}
	if s := metrics(t, addr, `vector="NET_RX"`)["bpfkit_softirq_seconds_total"]; s <= softirq {
		t.Errorf("bpfkit_softirq_seconds_total{vector=\"NET_RX\"} went from %v to %v during %d datagrams", softirq, s, n)
	}
}
