package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	"time"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

func init() { testkit.Register("serve-tcp", serveTCPWorkload) }

// serveTCPWorkload N PAYLOAD: listens on loopback (printing the port),
// waits for a line on stdin, then makes N connections to itself, each
// sending PAYLOAD bytes one way and closing; prints "done".
func serveTCPWorkload(args []string) int {
	n, _ := strconv.Atoi(args[0])
	payload, _ := strconv.Atoi(args[1])
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer ln.Close()
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	bufio.NewReader(os.Stdin).ReadString('\n')
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		s, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		s.SetDeadline(time.Now().Add(time.Minute))
		c.Write(make([]byte, payload))
		if _, err := io.ReadFull(s, make([]byte, payload)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c.Close()
		io.Copy(io.Discard, s) // the client's FIN
		s.Close()
	}
	fmt.Println("done")
	return 0
}

// metric reads one per-cgroup series from serve's /metrics (0 if absent).
func metric(t *testing.T, addr, name, cgroup string) float64 {
	t.Helper()
	return metricWith(t, addr, name, fmt.Sprintf("cgroup=%q", cgroup))
}

// metricWith sums the series of name on serve's /metrics whose labels
// include every one of labels (each `key="value"`); 0 if none.
func metricWith(t *testing.T, addr, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, l := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(l, name+"{") {
			continue
		}
		set := l[len(name)+1 : strings.LastIndexByte(l, '}')]
		if !slices.ContainsFunc(labels, func(want string) bool { return !slices.Contains(strings.Split(set, ","), want) }) {
			v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			sum += v
		}
	}
	return sum
}

// TestServeTCP: a process in a cgroup of its own makes n connections to
// itself in a namespace where an nftables rule drops the first k copies of
// its first data segment: /metrics shows 2n closed connections (both
// sides) and k retransmits for that cgroup, as many as the namespace's
// TcpRetransSegs (fewer only by runs the kernel skipped, and counted).
func TestServeTCP(t *testing.T) {
	testkit.RequireRoot(t)
	rel, fd := testCgroup(t, "", fmt.Sprintf("bpfkit-serve-tcp-%d", os.Getpid()))
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startServe(t, addr, "--tools", "tcp")
	ns := testkit.NewNetNS(t, "stcp")
	const n, k, payload = 5, 2, 100
	cmd := testkit.Command(t, "serve-tcp", strconv.Itoa(n), strconv.Itoa(payload))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := bufio.NewScanner(outPipe)
	if !out.Scan() {
		t.Fatal("workload printed no port")
	}
	// On loopback a data segment is 20 (IP) + 32 (TCP with timestamps)
	// + payload bytes at the input hook.
	length := 20 + 32 + payload
	port, err := strconv.ParseUint(out.Text(), 10, 16)
	if err != nil {
		t.Fatalf("workload printed port %q", out.Text())
	}
	ns.Drop(t, "bpfkit_serve_tcp", testkit.DropRule{Proto: unix.IPPROTO_TCP, DstPort: uint16(port),
		Length: uint32(length), QuotaBytes: uint64(k*length + 1)})
	retrans0 := ns.Counter(t, "snmp", "Tcp", "RetransSegs")
	fmt.Fprintln(in, "go")
	if !out.Scan() || out.Text() != "done" {
		t.Fatalf("workload: %q", out.Text())
	}
	retrans := ns.Counter(t, "snmp", "Tcp", "RetransSegs") - retrans0
	if retrans != k {
		t.Fatalf("TcpRetransSegs rose by %d, want %d (is the rule's length right?)", retrans, k)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		closed := metric(t, addr, "bpfkit_tcp_connections_closed_total", rel)
		re := metric(t, addr, "bpfkit_tcp_retransmits_total", rel)
		if closed == 2*n && re == k {
			return
		}
		if time.Now().After(deadline) {
			// Exact, unless the kernel skipped the programs: a perf-event
			// tracepoint's programs are skipped when another BPF program
			// runs on that CPU (another package's, on the host), counted
			// in 6.7+ (VMs run nothing else). Seen on the host in CI: one
			// retransmit short, with a skip counted.
			skipped := metricWith(t, addr, "bpfkit_tool_skipped_total", `tool="tcp"`)
			if closed > 2*n || re > k || (2*n-closed)+(k-re) > skipped {
				t.Fatalf("cgroup %s: %v connections closed, %v retransmits; want %d and %d (kernel-skipped runs: %v)", rel, closed, re, 2*n, k, skipped)
			}
			t.Logf("cgroup %s: %v connections closed, %v retransmits; want %d and %d, short by no more than the %v runs the kernel skipped", rel, closed, re, 2*n, k, skipped)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
