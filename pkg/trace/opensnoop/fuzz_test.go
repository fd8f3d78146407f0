package opensnoop

import (
	"bytes"
	"encoding/json"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// FuzzDecode feeds raw ring buffer records to the decoder: it must never
// panic, must reject a record shorter than its header or than the lengths
// it states, and what it accepts must print as valid JSON lines.
// Seeds: f.Add below and testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add(record(opensnoopOpenEvent{BootNs: 5, Pid: 10, Tid: 11, Uid: 1000, Ret: 3,
		Flags: unix.O_RDONLY | unix.O_CLOEXEC, PathSource: pathFile, Comm: comm("cat")}, "rel", "/abs/rel"))
	f.Add(record(opensnoopOpenEvent{Ret: -2, PathSource: pathDir, Comm: comm("x")}, "./a/b", "/d"))
	f.Add(record(opensnoopOpenEvent{Ret: -2, PathSource: pathName, Trunc: nameTruncated}, "/x\xff\n", ""))
	f.Add([]byte{})
	tr := &Tracer{clock: trace.Clock{}}
	var buf bytes.Buffer
	p := output.NewPrinter(&buf, output.JSON, Fields(FieldOptions{FullPath: true, Timestamps: true}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		err := tr.decode(raw)
		if len(raw) < headerSize {
			if err == nil {
				t.Fatalf("a %d-byte record (header %d) decoded", len(raw), headerSize)
			}
			return
		}
		h := *(*opensnoopOpenEvent)(unsafe.Pointer(&raw[0]))
		if need := headerSize + int(h.NameLen) + int(h.PathLen); need > len(raw) {
			if err == nil {
				t.Fatalf("a %d-byte record that states %d decoded", len(raw), need)
			}
			return
		}
		if err != nil {
			t.Fatalf("a well-formed record: %v", err)
		}
		if !bytes.Equal(tr.ev.Path, raw[headerSize:headerSize+int(h.NameLen)]) {
			t.Fatalf("path %q is not the record's name bytes", tr.ev.Path)
		}
		buf.Reset()
		if err := p.Print(&tr.ev); err != nil {
			t.Fatal(err)
		}
		if err := p.Flush(); err != nil {
			t.Fatal(err)
		}
		if line := bytes.TrimSuffix(buf.Bytes(), []byte("\n")); !json.Valid(line) || bytes.Contains(line, []byte("\n")) {
			t.Fatalf("not one JSON line: %q", buf.Bytes())
		}
	})
}
