package execsnoop

import (
	"bytes"
	"encoding/json"
	"testing"
	"unsafe"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

// FuzzDecodeExec feeds raw exec records to execsnoop's decoder: it must
// never panic, must reject a record shorter than its header or than the
// lengths it states, must give back the argv bytes it holds, and what it
// accepts must print as one valid JSON line. Seeds: f.Add below and
// testdata/fuzz/FuzzDecodeExec.
func FuzzDecodeExec(f *testing.F) {
	f.Add(execRecord(execsnoopExecEvent{Pid: 10, Ppid: 1, Uid: 1000, Ret: -2, Flags: argsTruncated},
		"/bin/ls", "/home/u", "ls\x00-l\x00partial"))
	f.Add(execRecord(execsnoopExecEvent{Pid: 1}, "/x", "", "x\x00\x00bad\xff\x00"))
	f.Add([]byte{recordExec})
	var e Event
	var buf bytes.Buffer
	p := output.NewPrinter(&buf, output.JSON, Fields(FieldOptions{Cwd: true, Timestamps: true}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		err := decodeExec(&e, raw, trace.Clock{})
		if len(raw) < execHeaderSize {
			if err == nil {
				t.Fatalf("a %d-byte record (header %d) decoded", len(raw), execHeaderSize)
			}
			return
		}
		h := *(*execsnoopExecEvent)(unsafe.Pointer(&raw[0]))
		argsAt := execHeaderSize + int(h.FilenameLen) + int(h.CwdLen)
		if need := argsAt + int(h.ArgsLen); need > len(raw) {
			if err == nil {
				t.Fatalf("a %d-byte record that states %d decoded", len(raw), need)
			}
			return
		}
		if err != nil {
			t.Fatalf("a well-formed record: %v", err)
		}
		// The args, NUL-terminated again, are the record's cmdline bytes
		// (a last argument without its NUL is one that was cut).
		var joined []byte
		for _, a := range e.Args {
			joined = append(append(joined, a...), 0)
		}
		cmdline := raw[argsAt : argsAt+int(h.ArgsLen)]
		if !bytes.Equal(joined, cmdline) && !bytes.Equal(joined, append(bytes.Clone(cmdline), 0)) {
			t.Fatalf("args %q from cmdline %q", e.Args, cmdline)
		}
		buf.Reset()
		if err := p.Print(&e); err != nil {
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

// FuzzExitRecords feeds raw records to exitsnoop's two decoders, as its Run
// does: an exec record is remembered, an exit record is decoded. Neither
// may panic; both must reject short records; an exit must print as one
// valid JSON line. Seeds: f.Add below and testdata/fuzz/FuzzExitRecords.
func FuzzExitRecords(f *testing.F) {
	exit := execsnoopExitEvent{Kind: recordExit, Pid: 7, Tid: 7, Ppid: 1, Code: 3 << 8, GroupDead: 1}
	f.Add(execRecord(execsnoopExecEvent{Pid: 7}, "/bin/x", "", "x\x00y\x00"),
		unsafe.Slice((*byte)(unsafe.Pointer(&exit)), exitHeaderSize))
	f.Add([]byte{recordExec}, []byte{recordExit})
	tr := &ExitTracer{cmdlines: map[uint32]*cmdline{}}
	var buf bytes.Buffer
	p := output.NewPrinter(&buf, output.JSON, ExitFields(ExitFieldOptions{Timestamps: true}))
	f.Fuzz(func(t *testing.T, exec, exit []byte) {
		if err := tr.remember(exec); len(exec) < execHeaderSize && err == nil {
			t.Fatalf("a %d-byte exec record (header %d) was remembered", len(exec), execHeaderSize)
		}
		done, err := tr.decodeExit(exit)
		if len(exit) < exitHeaderSize {
			if err == nil {
				t.Fatalf("a %d-byte exit record (header %d) decoded", len(exit), exitHeaderSize)
			}
			return
		}
		if err != nil {
			t.Fatalf("a well-formed exit record: %v", err)
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
		if done {
			tr.forget(tr.ev.PID)
		}
		if len(tr.cmdlines) > maxRemembered || tr.bytes < 0 {
			t.Fatalf("%d command lines, %d bytes held", len(tr.cmdlines), tr.bytes)
		}
	})
}
