// Package net benchmarks the TCP tools: the cost per connection of a
// connect/send/receive/close loop between two network namespaces, without
// tracing, with bpfkit tcplife, tcpstates and tcpretrans, and with the
// libbpf-tools tcplife and tcpstates (Debian package libbpf-tools), same
// rounds. Run with run.sh (root).
package net

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/testkit"
)

const payload = 100

// cpuTicks is a process's utime+stime in clock ticks.
func cpuTicks(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func BenchmarkConnections(b *testing.B) {
	testkit.RequireRoot(b)
	client, server := testkit.NewNetNS(b, "bna"), testkit.NewNetNS(b, "bnb")
	testkit.Veth(b, client, "bna", "198.18.9.1/24", server, "bnb", "198.18.9.2/24")
	// The client closes first, so each connection leaves a TIME-WAIT socket
	// on its port for 60 s: the rounds' 100,000 or so connections need
	// every port, and ports in TIME-WAIT taken again (the namespace's own
	// settings, gone with it).
	if err := client.Do(func() error {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte("1024 65535"), 0); err != nil {
			return err
		}
		return os.WriteFile("/proc/sys/net/ipv4/tcp_tw_reuse", []byte("1"), 0)
	}); err != nil {
		b.Fatal(err)
	}
	var ln net.Listener
	if err := server.Do(func() (err error) {
		ln, err = net.Listen("tcp", "198.18.9.2:0")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				buf := make([]byte, payload)
				if _, err := io.ReadFull(c, buf); err == nil {
					c.Write(buf)
					io.Copy(io.Discard, c)
				}
			}()
		}
	}()
	bin := os.Getenv("BPFKIT")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "bpfkit")
		build := exec.Command("go", "build", "-o", bin, "github.com/bpfkit/bpfkit/cmd/bpfkit")
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("build bpfkit: %v: %s", err, out)
		}
	}
	for _, tr := range []struct {
		name string
		argv []string
	}{
		{"none", nil},
		{"bpfkit-tcplife", []string{bin, "tcplife"}},
		{"bpfkit-tcpstates", []string{bin, "tcpstates"}},
		{"bpfkit-tcpretrans", []string{bin, "tcpretrans"}},
		{"libbpf-tools-tcplife", []string{"/usr/sbin/tcplife"}},
		{"libbpf-tools-tcpstates", []string{"/usr/sbin/tcpstates"}},
	} {
		b.Run(tr.name, func(b *testing.B) {
			var cmd *exec.Cmd
			if tr.argv != nil {
				if _, err := os.Stat(tr.argv[0]); err != nil {
					b.Skipf("%s: %v", tr.argv[0], err)
				}
				cmd = exec.Command(tr.argv[0], tr.argv[1:]...)
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				defer func() {
					cmd.Process.Signal(syscall.SIGINT)
					cmd.Wait()
				}()
				time.Sleep(2 * time.Second) // attached
			}
			var t0 int64
			if cmd != nil {
				t0 = cpuTicks(b, cmd.Process.Pid)
			}
			b.ResetTimer()
			err := client.Do(func() error {
				buf := make([]byte, payload)
				for range b.N {
					c, err := net.Dial("tcp", ln.Addr().String())
					if err != nil {
						return err
					}
					c.Write(buf)
					_, err = io.ReadFull(c, buf)
					c.Close()
					if err != nil {
						return err
					}
				}
				return nil
			})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if cmd != nil {
				time.Sleep(200 * time.Millisecond) // let it drain what is left
				ticks := cpuTicks(b, cmd.Process.Pid) - t0
				b.ReportMetric(float64(ticks)*1e7/float64(b.N), "tracer-cpu-ns/conn")
			}
		})
	}
}
