package filetop_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/trace/filetop"
)

func sampleRows() []filetop.Row {
	at := time.Date(2026, 11, 26, 8, 0, 0, 123456789, time.UTC)
	return []filetop.Row{
		{Time: at, PID: 10, TID: 11, Comm: "small", Reads: 3, ReadBytes: 3000, Type: filetop.Regular, Path: "/var/log/a.log"},
		{Time: at, PID: 10, TID: 12, Comm: "writer", Writes: 301, WriteBytes: 1234567, Type: filetop.Regular, Path: "/data/A", Deleted: true},
		{Time: at, PID: 20, TID: 20, Comm: "big\x01reader", Reads: 187, ReadBytes: 765432, Type: filetop.Regular, Path: "/data/\"B\"\n", PathTruncated: true},
		{Time: at, PID: 30, TID: 31, Comm: "net", Reads: 5, Writes: 500, ReadBytes: 50, WriteBytes: 5000, Type: filetop.Socket, Path: "socket:[1234]"},
		{Time: at, PID: 30, TID: 31, Comm: "net", Reads: 5, Writes: 5, ReadBytes: 5, WriteBytes: 5, Type: filetop.Pipe, Path: "pipe:[99]"},
	}
}

func TestSortKeys(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want []string // paths, largest first
	}{
		{"all", []string{"/data/A", "/data/\"B\"\n", "socket:[1234]", "/var/log/a.log", "pipe:[99]"}},
		{"reads", []string{"/data/\"B\"\n", "socket:[1234]", "pipe:[99]", "/var/log/a.log", "/data/A"}},
		{"writes", []string{"socket:[1234]", "/data/A", "pipe:[99]", "/var/log/a.log", "/data/\"B\"\n"}},
		{"rbytes", []string{"/data/\"B\"\n", "/var/log/a.log", "socket:[1234]", "pipe:[99]", "/data/A"}},
		{"wbytes", []string{"/data/A", "socket:[1234]", "pipe:[99]", "/var/log/a.log", "/data/\"B\"\n"}},
	} {
		key, err := filetop.ParseSortKey(tc.key)
		if err != nil {
			t.Fatal(err)
		}
		if key.String() != tc.key {
			t.Errorf("%s: String() = %s", tc.key, key)
		}
		rows := sampleRows()
		filetop.Sort(rows, key)
		var got []string
		for _, r := range rows {
			got = append(got, r.Path)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("sort %s: got %q, want %q", tc.key, got, tc.want)
		}
		if top := filetop.Top(sampleRows(), key, 2); len(top) != 2 || top[0].Path != tc.want[0] || top[1].Path != tc.want[1] {
			t.Errorf("top 2 by %s: got %+v", tc.key, top)
		}
	}
	if n := len(filetop.Top(sampleRows(), filetop.ByAll, 0)); n != 5 {
		t.Errorf("top 0 kept %d rows, want all 5", n)
	}
	if _, err := filetop.ParseSortKey("bytes"); err == nil {
		t.Error("ParseSortKey(bytes) did not fail")
	}
}

func TestFieldsGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format output.Format
		opts   filetop.FieldOptions
	}{
		{"table.golden", output.Table, filetop.FieldOptions{}},
		{"table-per-process.golden", output.Table, filetop.FieldOptions{PerProcess: true}},
		{"json.golden", output.JSON, filetop.FieldOptions{}},
		{"json-per-process.golden", output.JSON, filetop.FieldOptions{PerProcess: true}},
	} {
		var buf bytes.Buffer
		p := output.NewPrinter(&buf, tc.format, filetop.Fields(tc.opts))
		if err := p.Header(); err != nil {
			t.Fatal(err)
		}
		for _, r := range filetop.Top(sampleRows(), filetop.ByAll, 0) {
			if err := p.Print(&r); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		testkit.Golden(t, tc.name, buf.Bytes())
	}
}
