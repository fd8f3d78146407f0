package xdp

import (
	"bytes"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/output"
)

func TestStatsRowsAndFields(t *testing.T) {
	r := mustParse(t, "--src 198.18.0.0/15 --proto udp --dport 53 --action drop")
	r.ID = 7
	prev := Stats{Rules: []RuleStats{{Rule: r, Counter: Counter{100, 6400}}}, DefaultPass: Counter{1, 60}}
	now := Stats{Rules: []RuleStats{{Rule: r, Counter: Counter{300, 19200}}}, DefaultPass: Counter{1, 60}, Malformed: Counter{2, 40}}
	rows := Rows(now, PolicyDeny, &prev, 2*time.Second)
	if rows[0].PPS != 100 || rows[0].BPS != 51200 {
		t.Errorf("rates %v %v, want 100 pkt/s and 51200 bit/s", rows[0].PPS, rows[0].BPS)
	}
	var buf bytes.Buffer
	p := output.NewPrinter(&buf, output.JSON, Fields(true, true))
	for i := range rows {
		if err := p.Print(&rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	p.Flush()
	want := `{"id":7,"src":"198.18.0.0/15","dst":null,"proto":"udp","sport":null,"dport":"53","priority":0,"action":"drop","packets":300,"bytes":19200,"pps":100.0,"bps":51200.0}
{"id":"default","action":"pass","packets":1,"bytes":60,"pps":0.0,"bps":0.0}
{"id":"malformed","action":"drop","packets":2,"bytes":40,"pps":1.0,"bps":160.0}
{"id":"non-ip","action":"pass","packets":0,"bytes":0,"pps":0.0,"bps":0.0}
`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
	buf.Reset()
	p = output.NewPrinter(&buf, output.Table, Fields(true, true))
	p.Header()
	p.Print(&rows[0])
	p.Flush()
	wantTable := "ID        SRC                DST                PROTO  SPORT       DPORT       PRIO ACTION                PACKETS          BYTES       PKT/S BIT/S\n" +
		"7         198.18.0.0/15      any                udp    any         53             0 drop                      300          19200         100 51.2k\n"
	if buf.String() != wantTable {
		t.Errorf("table:\n%q\nwant:\n%q", buf.String(), wantTable)
	}
}

func mustParse(t *testing.T, line string) Rule {
	t.Helper()
	r, err := ParseRule(line)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
