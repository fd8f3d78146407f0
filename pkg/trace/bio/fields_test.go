package bio

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/output"
)

// TestEventJSONKeys: biosnoop's JSON lines have exactly the keys the
// issue names, in that order, with the values of the event.
func TestEventJSONKeys(t *testing.T) {
	var buf bytes.Buffer
	p := output.NewPrinter(&buf, output.JSON, EventFields(true))
	e := Event{Time: time.Unix(1700000000, 5), PID: 42, Comm: []byte("dd"), Disk: "sda1", RWBS: []byte("WS"),
		Sector: 2048, Bytes: 4096, Queue: 1500, Service: 250000, Cgroup: 77}
	if err := p.Print(&e); err != nil {
		t.Fatal(err)
	}
	p.Flush()
	dec := json.NewDecoder(strings.NewReader(buf.String()))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	want := "time pid comm disk rwbs sector bytes queue_ns service_ns cgroup"
	if got := strings.Join(keys, " "); got != want {
		t.Errorf("keys %q, want %q", got, want)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"pid": 42.0, "comm": "dd", "disk": "sda1", "rwbs": "WS", "sector": 2048.0,
		"bytes": 4096.0, "queue_ns": 1500.0, "service_ns": 250000.0, "cgroup": 77.0} {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

// TestRWBS: the request types as the kernel's blk_fill_rwbs writes them,
// with the flag bits of 6.x.
func TestRWBS(t *testing.T) {
	f := reqFlags{sync: 1 << 11, meta: 1 << 12, fua: 1 << 17, preflush: 1 << 18, rahead: 1 << 19}
	for _, c := range []struct {
		cmd  uint32
		want string
	}{
		{opRead, "R"},
		{opRead | f.rahead, "RA"},
		{opRead | f.sync | f.meta, "RSM"},
		{opWrite | f.sync, "WS"},
		{opWrite | f.preflush | f.fua | f.sync, "FWFS"},
		{opFlush | f.preflush, "FF"},
		{opDiscard, "D"},
		{opSecureErase, "DE"},
		{9, "N"}, // write zeroes
	} {
		if got := string(f.appendRWBS(nil, c.cmd)); got != c.want {
			t.Errorf("cmd_flags %#x: %q, want %q", c.cmd, got, c.want)
		}
	}
}

// TestHistJSON: biolatency's JSON lines have runqlat's shape plus disk and
// flags when split.
func TestHistJSON(t *testing.T) {
	var buf bytes.Buffer
	p := output.NewPrinter(&buf, output.JSON, HistFields(Config{ByDisk: true, ByFlags: true}))
	r := Report{Time: time.Unix(1700000000, 0), Unit: "usecs", Hist: Hist{Disk: "loop3", Flags: "WS"}}
	r.Buckets[0], r.Buckets[3] = 2, 5
	p.Print(&r)
	p.Flush()
	want := `"unit":"usecs","disk":"loop3","flags":"WS","buckets":[{"low":0,"high":1,"count":2},{"low":2,"high":3,"count":0},{"low":4,"high":7,"count":0},{"low":8,"high":15,"count":5}]}`
	if !strings.HasSuffix(strings.TrimSpace(buf.String()), want) {
		t.Errorf("got %s\nwant ...%s", buf.String(), want)
	}
}
