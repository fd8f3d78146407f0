package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
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
