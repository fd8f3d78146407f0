package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

// TestTcplifeJSON runs `bpfkit tcplife -p PID -o json` while this process
// makes one connection to itself in a namespace of its own: two rows (one
// per side) with exactly the keys, the bytes and this pid.
func TestTcplifeJSON(t *testing.T) {
	testkit.RequireRoot(t)
	ns := testkit.NewNetNS(t, "life")
	cmd := bpfkit(t, "tcplife", "-p", strconv.Itoa(os.Getpid()), "--count", "2", "-d", "2m", "-o", "json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	testkit.WaitRingReader(t, cmd.Process.Pid)
	const sent, answered = 1234, 56
	var port int
	if err := ns.Do(func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		port = ln.Addr().(*net.TCPAddr).Port
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		s, err := ln.Accept()
		if err != nil {
			return err
		}
		c.SetDeadline(time.Now().Add(time.Minute))
		s.SetDeadline(time.Now().Add(time.Minute))
		c.Write(make([]byte, sent))
		if _, err := io.ReadFull(s, make([]byte, sent)); err != nil {
			return err
		}
		s.Write(make([]byte, answered))
		if _, err := io.ReadFull(c, make([]byte, answered)); err != nil {
			return err
		}
		c.Close()
		io.Copy(io.Discard, s) // the client's FIN
		return s.Close()
	}); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("bpfkit: %v: %s", err, stderr.String())
	}
	keys := []string{"comm", "daddr", "dport", "duration_ns", "family", "pid", "rx_bytes", "saddr", "sport", "time", "tx_bytes"}
	lines := bytes.Split(bytes.TrimSpace(stdout.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %s / %s", len(lines), stdout.String(), stderr.String())
	}
	for _, l := range lines {
		var row map[string]any
		if err := json.Unmarshal(l, &row); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		var got []string
		for k := range row {
			got = append(got, k)
		}
		slices.Sort(got)
		if !slices.Equal(got, keys) {
			t.Errorf("keys %v, want %v", got, keys)
		}
		tx, rx := float64(sent), float64(answered)
		if row["sport"] == float64(port) {
			tx, rx = rx, tx
		} else if row["dport"] != float64(port) {
			t.Errorf("row of another connection: %s", l)
		}
		if row["pid"] != float64(os.Getpid()) || row["tx_bytes"] != tx || row["rx_bytes"] != rx ||
			row["family"] != "IPv4" || row["saddr"] != "127.0.0.1" || row["daddr"] != "127.0.0.1" {
			t.Errorf("row %s: want pid %d, tx %v, rx %v over 127.0.0.1", l, os.Getpid(), tx, rx)
		}
	}
}

// TestTcplifePorts runs two `bpfkit tcplife -o json`, one with -L as a
// comma-separated list, one with -D and --remote-port given once each,
// while this process makes one connection to each of four ports on
// loopback in a namespace of its own; once the namespace holds no socket
// but TIME-WAIT ones (every close traced), SIGINT: the first printed
// exactly the server rows of its two ports, the second exactly the
// client rows to its two.
func TestTcplifePorts(t *testing.T) {
	testkit.RequireRoot(t)
	ns := testkit.NewNetNS(t, "lifeports")
	pid := strconv.Itoa(os.Getpid())
	type run struct {
		cmd            *exec.Cmd
		stdout, stderr bytes.Buffer
		done           chan error
	}
	start := func(args ...string) *run {
		r := &run{cmd: bpfkit(t, append([]string{"tcplife", "-p", pid, "-o", "json"}, args...)...), done: make(chan error, 1)}
		r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { r.done <- r.cmd.Wait() }()
		t.Cleanup(func() { r.cmd.Process.Kill() })
		return r
	}
	local := start("-L", "7201,7203")
	remote := start("-D", "7202", "--remote-port", "7203")
	testkit.WaitRingReader(t, local.cmd.Process.Pid)
	testkit.WaitRingReader(t, remote.cmd.Process.Pid)

	clientPort := map[int]int{} // server port -> the client's
	if err := ns.Do(func() error {
		for port := 7201; port <= 7204; port++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				return err
			}
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				ln.Close()
				return err
			}
			s, err := ln.Accept()
			ln.Close()
			if err != nil {
				c.Close()
				return err
			}
			clientPort[port] = c.LocalAddr().(*net.TCPAddr).Port
			s.SetDeadline(time.Now().Add(time.Minute))
			c.Write(make([]byte, 10))
			c.Close()
			io.Copy(io.Discard, s) // the data and the client's FIN
			s.Close()
		}
		// A socket leaves the table after its change to CLOSE was
		// traced; a TIME-WAIT one has no state change left.
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
			tab, err := os.ReadFile("/proc/thread-self/net/tcp")
			if err != nil {
				return err
			}
			open := 0
			for _, l := range strings.Split(strings.TrimSpace(string(tab)), "\n")[1:] {
				if f := strings.Fields(l); len(f) > 3 && f[3] != "06" { // TCP_TIME_WAIT
					open++
				}
			}
			if open == 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d sockets still open after a minute:\n%s", open, tab)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		r    *run
		want []string // sport>dport
	}{
		{"-L 7201,7203", local, []string{fmt.Sprintf("7201>%d", clientPort[7201]), fmt.Sprintf("7203>%d", clientPort[7203])}},
		{"-D 7202 --remote-port 7203", remote, []string{fmt.Sprintf("%d>7202", clientPort[7202]), fmt.Sprintf("%d>7203", clientPort[7203])}},
	} {
		c.r.cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-c.r.done:
			if err != nil {
				t.Fatalf("bpfkit tcplife %s: %v: %s", c.name, err, c.r.stderr.String())
			}
		case <-time.After(time.Minute):
			t.Fatalf("bpfkit tcplife %s did not stop on SIGINT: %s", c.name, c.r.stderr.String())
		}
		var got []string
		for _, l := range bytes.Split(bytes.TrimSpace(c.r.stdout.Bytes()), []byte("\n")) {
			var row struct{ Sport, Dport int }
			if err := json.Unmarshal(l, &row); err != nil {
				t.Fatalf("%s: %q: %v", c.name, l, err)
			}
			got = append(got, fmt.Sprintf("%d>%d", row.Sport, row.Dport))
		}
		slices.Sort(got)
		slices.Sort(c.want)
		if !slices.Equal(got, c.want) {
			t.Errorf("tcplife %s: rows (sport>dport) %v, want %v; stderr: %s", c.name, got, c.want, c.r.stderr.String())
		}
	}
}
