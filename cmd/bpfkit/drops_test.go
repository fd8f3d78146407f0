package main

import (
	"bytes"
	"encoding/json"
	"net"
	"slices"
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

// sendUDP sends n datagrams from a to 198.18.15.2 port 9.
func sendUDP(t *testing.T, a *testkit.NetNS, n int) {
	t.Helper()
	if err := a.Do(func() error {
		c, err := net.ListenPacket("udp", "198.18.15.1:0")
		if err != nil {
			return err
		}
		defer c.Close()
		for range n {
			if _, err := c.WriteTo([]byte("x"), &net.UDPAddr{IP: net.ParseIP("198.18.15.2"), Port: 9}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
