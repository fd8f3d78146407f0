package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

// TestDropsJSON: `bpfkit drops -o json` prints each of n datagrams sent to
// a closed port in a test namespace with exactly the keys; then
// `bpfkit softirqs` and `bpfkit netrx` print one interval of JSON.
func TestDropsJSON(t *testing.T) {
	testkit.RequireRoot(t)
	a, b := testkit.NewNetNS(t, "dra"), testkit.NewNetNS(t, "drb")
	testkit.Veth(t, a, "va", "198.18.15.1/24", b, "vb", "198.18.15.2/24")
	a.Neighbor(t, "va", "198.18.15.2", b.MAC(t, "vb"))
	var st unix.Stat_t
	if err := unix.Stat(b.Path, &st); err != nil {
		t.Fatal(err)
	}

	cmd := bpfkit(t, "drops", "-o", "json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	testkit.WaitRingReader(t, cmd.Process.Pid)
	const n = 5
	sendUDP(t, a, n)
	time.Sleep(500 * time.Millisecond) // the reader flushes every 10 ms; the drops are synchronous
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("bpfkit drops: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("bpfkit drops did not stop on SIGINT; stderr: %s", stderr.String())
	}
	want := []string{"daddr", "dport", "iface", "location", "netns", "protocol", "reason", "saddr", "sport", "time"}
	got := 0
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		keys := make([]string, 0, len(e))
		for k := range e {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, want) {
			t.Fatalf("keys %v, want %v", keys, want)
		}
		if e["netns"] == float64(st.Ino) && e["dport"] == float64(9) {
			if e["saddr"] != "198.18.15.1" || e["daddr"] != "198.18.15.2" || e["iface"] != "vb" || e["protocol"] != "UDP" {
				t.Errorf("drop %v", e)
			}
			got++
		}
	}
	if got != n {
		t.Errorf("%d drops to port 9 in the namespace, want %d; stdout:\n%s", got, n, stdout.String())
	}

	// softirqs and netrx: one interval of JSON while datagrams cross the
	// veth (NET_RX work, a row for vb).
	for _, tool := range []string{"softirqs", "netrx"} {
		res := make(chan string, 1)
		go func() {
			out, errOut, code := runBpfkit(t, bpfkit(t, tool, "-o", "json", "0.5", "1"))
			if code != 0 {
				out = "exit " + errOut
			}
			res <- out
		}()
		var out string
	send:
		for range 200 { // 10 s at most
			select {
			case out = <-res:
				break send
			case <-time.After(50 * time.Millisecond):
				sendUDP(t, a, 1)
			}
		}
		if !strings.Contains(out, `"interval_ns":`) {
			t.Errorf("bpfkit %s -o json 0.5 1: %q", tool, out)
		}
	}
}

// TestDropsSummaryNetns: `bpfkit drops --summary --netns NAME` (a name
// from ip netns; the inode it stands for is what the tracer gets) prints,
// at Ctrl-C, exactly one row for the namespace: the n datagrams sent to a
// closed port there, as many as its Udp NoPorts counted; the n that it
// sends to a closed port elsewhere at the same time are left out.
func TestDropsSummaryNetns(t *testing.T) {
	testkit.RequireRoot(t)
	a, b := testkit.QuietPair(t, "ds", "198.18.15") // nothing but the datagrams crosses the veth

	cmd := bpfkit(t, "drops", "--summary", "--netns", b.Name)
	var stdout bytes.Buffer
	stderr, w, err := os.Pipe() // read to the end below, also after exit
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd.Stdout, cmd.Stderr = &stdout, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	// Attached once it says it counts (30 s at most: slow under TCG).
	var errText strings.Builder // read once scanned is closed
	counting, scanned := make(chan bool, 1), make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			errText.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Counting drops") {
				counting <- true
			}
		}
		close(counting)
	}()
	select {
	case ok := <-counting:
		if !ok {
			t.Fatalf("bpfkit drops --summary ended before counting")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("bpfkit drops --summary did not start counting in 30 s")
	}
	const n = 70
	noports := b.Counter(t, "snmp", "Udp", "NoPorts")
	sendUDPTo(t, a, "198.18.15.2", n)
	sendUDPTo(t, b, "198.18.15.1", n)
	d := b.Counter(t, "snmp", "Udp", "NoPorts") - noports
	_ = cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		<-scanned
		if err != nil {
			t.Fatalf("bpfkit drops --summary: %v; stderr: %s", err, errText.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("bpfkit drops --summary did not stop on SIGINT")
	}
	reason := "NOT_SPECIFIED" // no drop reasons before 5.17
	if testkit.KernelAtLeast(5, 17) {
		reason = "NO_SOCKET"
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 || d != n {
		t.Fatalf("b's Udp NoPorts rose by %d (want %d); output, want a header and one row:\n%s", d, n, stdout.String())
	}
	row := strings.Fields(lines[1])
	if len(row) != 4 || row[1] != strconv.Itoa(n) || row[2] != reason || row[3] != "__udp4_lib_rcv" && row[3] != "udp_rcv" {
		t.Errorf("row %q, want %d %s at __udp4_lib_rcv or udp_rcv", lines[1], n, reason)
	}
}

// sendUDP sends n datagrams from a to 198.18.15.2 port 9.
func sendUDP(t *testing.T, a *testkit.NetNS, n int) {
	t.Helper()
	sendUDPTo(t, a, "198.18.15.2", n)
}

// sendUDPTo sends n datagrams from namespace from to addr port 9.
func sendUDPTo(t *testing.T, from *testkit.NetNS, addr string, n int) {
	t.Helper()
	if err := from.Do(func() error {
		c, err := net.ListenPacket("udp", ":0")
		if err != nil {
			return err
		}
		defer c.Close()
		for range n {
			if _, err := c.WriteTo([]byte("x"), &net.UDPAddr{IP: net.ParseIP(addr), Port: 9}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
