package opensnoop

import (
	"bytes"
	"encoding/json"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// record builds a raw ring buffer record as the BPF program writes it.
func record(h opensnoopOpenEvent, name, path string) []byte {
	h.NameLen, h.PathLen = uint16(len(name)), uint16(len(path))
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&h)), unsafe.Sizeof(h))
	out := append([]byte(nil), raw...)
	out = append(out, name...)
	return append(out, path...)
}

func comm(s string) (c [16]int8) {
	for i := range len(s) {
		c[i] = int8(s[i])
	}
	return c
}

func TestDecode(t *testing.T) {
	tr := &Tracer{clock: trace.Clock{}}
	cases := []struct {
		name string
		raw  []byte
		want Event
	}{
		{"success from file", record(opensnoopOpenEvent{BootNs: 5, Pid: 10, Tid: 11, Uid: 1000, Ret: 3,
			Flags: unix.O_RDONLY | unix.O_CLOEXEC, PathSource: pathFile, Comm: comm("cat")}, "rel", "/abs/rel"),
			Event{Time: time.Unix(0, 5), PID: 10, TID: 11, UID: 1000, Comm: []byte("cat"), FD: 3,
				Flags: unix.O_RDONLY | unix.O_CLOEXEC, Path: []byte("rel"), FullPath: []byte("/abs/rel")}},
		{"failed relative", record(opensnoopOpenEvent{Ret: -2, PathSource: pathDir, Comm: comm("x")}, "./a/b", "/d"),
			Event{Time: time.Unix(0, 0), FD: -1, Errno: syscall.ENOENT, Comm: []byte("x"), Path: []byte("./a/b"),
				FullPath: []byte("/d/a/b"), FullPathFromName: true}},
		{"failed relative under root", record(opensnoopOpenEvent{Ret: -13, PathSource: pathDir}, "f", "/"),
			Event{Time: time.Unix(0, 0), FD: -1, Errno: syscall.EACCES, Comm: []byte{}, Path: []byte("f"),
				FullPath: []byte("/f"), FullPathFromName: true}},
		{"failed absolute", record(opensnoopOpenEvent{Ret: -2, PathSource: pathName, Trunc: nameTruncated}, "/x", ""),
			Event{Time: time.Unix(0, 0), FD: -1, Errno: syscall.ENOENT, Comm: []byte{}, Path: []byte("/x"),
				FullPath: []byte("/x"), FullPathFromName: true, PathTruncated: true, FullPathTruncated: true}},
		{"no full path", record(opensnoopOpenEvent{Ret: 0}, "n", ""),
			Event{Time: time.Unix(0, 0), Comm: []byte{}, Path: []byte("n")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tr.decode(tc.raw); err != nil {
				t.Fatal(err)
			}
			got := tr.ev
			if !got.Time.Equal(tc.want.Time) || got.PID != tc.want.PID || got.TID != tc.want.TID ||
				got.UID != tc.want.UID || !bytes.Equal(got.Comm, tc.want.Comm) || got.FD != tc.want.FD ||
				got.Errno != tc.want.Errno || got.Flags != tc.want.Flags || got.Mode != tc.want.Mode ||
				!bytes.Equal(got.Path, tc.want.Path) || !bytes.Equal(got.FullPath, tc.want.FullPath) ||
				got.FullPathFromName != tc.want.FullPathFromName || got.PathTruncated != tc.want.PathTruncated ||
				got.FullPathTruncated != tc.want.FullPathTruncated {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDecodeRejectsShortRecords(t *testing.T) {
	tr := &Tracer{}
	if err := tr.decode(make([]byte, headerSize-1)); err == nil {
		t.Error("a record shorter than the header decoded")
	}
	raw := record(opensnoopOpenEvent{}, "abc", "")
	if err := tr.decode(raw[:len(raw)-1]); err == nil {
		t.Error("a record shorter than its lengths decoded")
	}
}

func TestAppendFlags(t *testing.T) {
	for flags, want := range map[uint32]string{
		unix.O_RDONLY: "O_RDONLY",
		unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC:   "O_WRONLY|O_CREAT|O_TRUNC",
		unix.O_RDWR | unix.O_CLOEXEC | unix.O_SYNC:    "O_RDWR|O_SYNC|O_CLOEXEC",
		unix.O_RDONLY | unix.O_DSYNC:                  "O_RDONLY|O_DSYNC",
		unix.O_RDWR | unix.O_TMPFILE:                  "O_RDWR|O_TMPFILE",
		unix.O_RDONLY | unix.O_DIRECTORY:              "O_RDONLY|O_DIRECTORY",
		unix.O_RDONLY | kernelOLargefile | 0x40000000: "O_RDONLY|O_LARGEFILE|0x40000000",
	} {
		if got := string(AppendFlags(nil, flags)); got != want {
			t.Errorf("flags %#x: %s, want %s", flags, got, want)
		}
	}
}

// goldenEvents cover what a terminal or a JSON reader could trip on.
func goldenEvents() []Event {
	at := time.Date(2026, 11, 26, 7, 30, 1, 123456789, time.UTC)
	return []Event{
		{Time: at, PID: 1234, TID: 1235, UID: 0, Comm: []byte("cat"), FD: 3, Flags: unix.O_RDONLY | unix.O_CLOEXEC,
			Path: []byte("/etc/hostname"), FullPath: []byte("/etc/hostname")},
		{Time: at, PID: 42, TID: 42, UID: 1000, Comm: []byte("sh"), FD: -1, Errno: syscall.ENOENT, Flags: unix.O_RDONLY,
			Path: []byte("missing"), FullPath: []byte("/home/u/missing"), FullPathFromName: true},
		{Time: at, PID: 7, TID: 8, UID: 33, Comm: []byte("weird\tname"), FD: 5, Flags: unix.O_WRONLY | unix.O_CREAT, Mode: 0o640,
			Path: []byte("new\nline\xff\xfe\"q\"\\.txt"), FullPath: []byte("/tmp/new\nline\xff\xfe\"q\"\\.txt")},
		{Time: at, PID: 9, TID: 9, Comm: []byte("long"), FD: 4, Path: []byte("/a/b"), FullPath: []byte("/a/b"),
			PathTruncated: true, FullPathTruncated: true},
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		file   string
		format output.Format
		opts   FieldOptions
	}{
		{"table.golden", output.Table, FieldOptions{}},
		{"table-full-time.golden", output.Table, FieldOptions{FullPath: true, Timestamps: true}},
		{"json.golden", output.JSON, FieldOptions{}},
		{"json-full.golden", output.JSON, FieldOptions{FullPath: true}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var buf bytes.Buffer
			p := output.NewPrinter(&buf, tc.format, Fields(tc.opts))
			if err := p.Header(); err != nil {
				t.Fatal(err)
			}
			events := goldenEvents()
			for i := range events {
				if err := p.Print(&events[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Flush(); err != nil {
				t.Fatal(err)
			}
			if tc.format == output.JSON {
				checkJSON(t, buf.Bytes(), tc.opts.FullPath)
			}
			testkit.Golden(t, tc.file, buf.Bytes())
		})
	}
}

// checkJSON: every line is valid JSON with exactly the documented keys.
func checkJSON(t *testing.T, out []byte, full bool) {
	t.Helper()
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	events := goldenEvents()
	if len(lines) != len(events) {
		t.Fatalf("%d JSON lines for %d events", len(lines), len(events))
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i, err, line)
		}
		want := []string{"time", "pid", "tid", "uid", "comm", "fd", "errno", "flags", "mode", "path"}
		if full {
			want = append(want, "full_path")
			if events[i].FullPathFromName {
				want = append(want, "full_path_from_name")
			}
			if events[i].FullPathTruncated {
				want = append(want, "full_path_truncated")
			}
		}
		if events[i].PathTruncated {
			want = append(want, "path_truncated")
		}
		if len(m) != len(want) {
			t.Errorf("line %d has keys %v, want %v", i, m, want)
		}
		for _, k := range want {
			if _, ok := m[k]; !ok {
				t.Errorf("line %d lacks %q", i, k)
			}
		}
		if ts, err := time.Parse(time.RFC3339Nano, m["time"].(string)); err != nil || !ts.Equal(events[i].Time) {
			t.Errorf("line %d: time %v (%v)", i, m["time"], err)
		}
	}
	// A path that is valid UTF-8 comes back byte for byte.
	var m map[string]any
	json.Unmarshal(lines[0], &m)
	if m["path"] != "/etc/hostname" || m["flags"] != "O_RDONLY|O_CLOEXEC" || m["fd"] != 3.0 || m["errno"] != 0.0 {
		t.Errorf("first line decoded to %v", m)
	}
}

// BenchmarkDecodePrint is the user-space cost of one event: decode the
// record and print it, as bpfkit opensnoop does.
func BenchmarkDecodePrint(b *testing.B) {
	raw := record(opensnoopOpenEvent{BootNs: 123456789, Pid: 4242, Tid: 4243, Ret: 3,
		Flags: unix.O_RDONLY | unix.O_CLOEXEC, PathSource: pathFile, Comm: comm("nginx")},
		"conf.d/default.conf", "/etc/nginx/conf.d/default.conf")
	for _, format := range []output.Format{output.Table, output.JSON} {
		b.Run(format.String(), func(b *testing.B) {
			tr := &Tracer{clock: trace.NewClock()}
			p := output.NewPrinter(discard{}, format, Fields(FieldOptions{FullPath: true}))
			b.ReportAllocs()
			for b.Loop() {
				if err := tr.decode(raw); err != nil {
					b.Fatal(err)
				}
				p.Print(&tr.ev)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
