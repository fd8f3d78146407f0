package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/loader"
)

// TestOomkillJSON: `bpfkit oomkill -o json` reports the hog a memory
// cgroup's limit killed, once, with the keys the docs name, and as many
// kills in all as /proc/vmstat counted.
func TestOomkillJSON(t *testing.T) {
	testkit.RequireRoot(t)
	cmd := bpfkit(t, "oomkill", "-o", "json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testkit.WaitRingReader(t, cmd.Process.Pid)
	lines := make(chan map[string]any, 16)
	go func() {
		in := bufio.NewScanner(stdout)
		for in.Scan() {
			var m map[string]any
			if err := json.Unmarshal(in.Bytes(), &m); err != nil {
				m = map[string]any{"bad line": in.Text()}
			}
			lines <- m
		}
		close(lines)
	}()

	m := testkit.NewMemoryCgroup(t, loader.MemcgRoot, 48<<20)
	vmstat := testkit.VMStat(t, "oom_kill")
	pid, tid := testkit.OOMHog(t, 0, func(pid int) { m.Add(t, pid) })
	global := testkit.VMStat(t, "oom_kill") - vmstat
	if kills := m.OOMKills(t); kills != 1 {
		t.Fatalf("the cgroup's oom_kill is %d, want 1", kills)
	}
	var mine []map[string]any
	for n := uint64(0); n < global; n++ {
		select {
		case l := <-lines:
			if l["cgroup"] == m.Rel {
				mine = append(mine, l)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d reports, /proc/vmstat's oom_kill rose by %d; stderr: %s", n, global, stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v: %s", err, stderr.String())
	}
	for l := range lines {
		t.Errorf("a report more than /proc/vmstat counted: %v", l)
	}
	if want := fmt.Sprintf("bpfkit: %d events, 0 lost\n", global); stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	if len(mine) != 1 {
		t.Fatalf("%d reports for the test's cgroup, want 1: %v", len(mine), mine)
	}
	l := mine[0]
	comm := testkit.OOMHogComm
	for key, want := range map[string]any{
		"pid": float64(pid), "tgid": float64(pid), "comm": comm, "trigger_pid": float64(pid),
		"trigger_tid": float64(tid), "trigger_comm": comm, "victim_cgroup": m.Rel,
	} {
		if l[key] != want {
			t.Errorf("%s: %v, want %v (%v)", key, l[key], want, l)
		}
	}
	if _, ok := l["time"]; !ok {
		t.Errorf("no time in %v", l)
	}
	// The figures are there exactly when the tracepoint has them.
	_, figures := l["anon_rss_bytes"]
	if format, err := os.ReadFile("/sys/kernel/tracing/events/oom/mark_victim/format"); err != nil || bytes.Contains(format, []byte("anon_rss")) != figures {
		t.Errorf("anon_rss_bytes given: %v; the tracepoint's format: %s %v", figures, format, err)
	}
	if figures && l["oom_score_adj"] != float64(0) {
		t.Errorf("oom_score_adj %v, want 0", l["oom_score_adj"])
	}
}
