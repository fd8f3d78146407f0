package execsnoop

import (
	"bytes"
	"encoding/binary"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/bpfkit/bpfkit/internal/output"
	"github.com/bpfkit/bpfkit/internal/testkit"
	"github.com/bpfkit/bpfkit/pkg/trace"
)

func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"ls\x00", []string{"ls"}},
		{"ls\x00-l\x00\x00x\x00", []string{"ls", "-l", "", "x"}},
		{"ls\x00trunc", []string{"ls", "trunc"}},
	} {
		got := strs(SplitArgs(nil, []byte(tc.in)))
		if !slices.Equal(got, tc.want) {
			t.Errorf("SplitArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDecodeStatus(t *testing.T) {
	for _, tc := range []struct {
		code uint32
		exit int
		sig  syscall.Signal
		core bool
	}{
		{0, 0, 0, false},
		{3 << 8, 3, 0, false},
		{255 << 8, 255, 0, false},
		{9, 0, syscall.SIGKILL, false},
		{6 | 0x80, 0, syscall.SIGABRT, true},
	} {
		exit, sig, core := DecodeStatus(tc.code)
		if exit != tc.exit || sig != tc.sig || core != tc.core {
			t.Errorf("DecodeStatus(%#x) = %d, %v, %v; want %d, %v, %v", tc.code, exit, sig, core, tc.exit, tc.sig, tc.core)
		}
	}
}

// execRecord builds a record as the BPF program sends it.
func execRecord(h execsnoopExecEvent, filename, cwd, cmdline string) []byte {
	h.Kind = recordExec
	h.FilenameLen, h.CwdLen, h.ArgsLen = uint16(len(filename)), uint16(len(cwd)), uint32(len(cmdline))
	var b bytes.Buffer
	binary.Write(&b, binary.NativeEndian, &h)
	b.WriteString(filename + cwd + cmdline)
	return b.Bytes()
}

func TestDecodeExec(t *testing.T) {
	var comm [16]int8
	for i, c := range "bash" {
		comm[i] = int8(c)
	}
	raw := execRecord(execsnoopExecEvent{Pid: 10, Ppid: 1, Uid: 1000, Ret: -2, Flags: argsTruncated, Comm: comm},
		"/bin/ls", "/home/u", "ls\x00-l\x00partial")
	if len(raw) != execHeaderSize+len("/bin/ls/home/uls\x00-l\x00partial") {
		t.Fatalf("record size %d: header is %d bytes", len(raw), unsafe.Sizeof(execsnoopExecEvent{}))
	}
	var e Event
	if err := decodeExec(&e, raw, trace.Clock{}); err != nil {
		t.Fatal(err)
	}
	if e.PID != 10 || e.PPID != 1 || e.UID != 1000 || e.Ret != -2 || string(e.Comm) != "bash" ||
		string(e.Filename) != "/bin/ls" || string(e.Cwd) != "/home/u" || !e.Truncated ||
		!slices.Equal(strs(e.Args), []string{"ls", "-l", "partial"}) {
		t.Errorf("decoded %+v", e)
	}
	if err := decodeExec(&e, raw[:len(raw)-1], trace.Clock{}); err == nil {
		t.Error("a short record decoded without error")
	}
	if err := decodeExec(&e, raw[:10], trace.Clock{}); err == nil {
		t.Error("a short header decoded without error")
	}
}

var when = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)

func sampleExecs() []Event {
	return []Event{
		{Time: when, PID: 4242, PPID: 1, UID: 0, Comm: []byte("ls"), Filename: []byte("/usr/bin/ls"),
			Args: [][]byte{[]byte("ls"), []byte("-l"), []byte("my file \"x\"")}, Cwd: []byte("/root")},
		{Time: when, PID: 4243, PPID: 4242, UID: 1000, Comm: []byte("sh"), Filename: []byte("./nope"),
			Args: [][]byte{[]byte("./nope"), []byte("bad\xff\nline")}, Ret: -2, Cwd: []byte("/tmp")},
		{Time: when, PID: 4244, PPID: 1, Comm: []byte("x"), Filename: []byte("/bin/x"),
			Args: [][]byte{[]byte("x"), []byte("aaaa")}, Truncated: true, Cwd: []byte("/")},
	}
}

func printAll[E any](t *testing.T, format output.Format, fields []output.Field[E], events []E) []byte {
	var b bytes.Buffer
	p := output.NewPrinter(&b, format, fields)
	if err := p.Header(); err != nil {
		t.Fatal(err)
	}
	for i := range events {
		if err := p.Print(&events[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestExecPrinters(t *testing.T) {
	testkit.Golden(t, "exec.table", printAll(t, output.Table, Fields(FieldOptions{}), sampleExecs()))
	testkit.Golden(t, "exec-T-q-cwd.table", printAll(t, output.Table, Fields(FieldOptions{Timestamps: true, Quote: true, Cwd: true}), sampleExecs()))
	testkit.Golden(t, "exec.json", printAll(t, output.JSON, Fields(FieldOptions{}), sampleExecs()))
}

func TestExitPrinters(t *testing.T) {
	exits := []ExitEvent{
		{Time: when, PID: 4242, TID: 4242, PPID: 1, Comm: []byte("ls"), Age: 1500 * time.Millisecond,
			Args: [][]byte{[]byte("ls"), []byte("-l")}},
		{Time: when, PID: 4243, TID: 4245, PPID: 1, Comm: []byte("false"), ExitCode: 3, Age: 2 * time.Millisecond},
		{Time: when, PID: 4244, TID: 4244, PPID: 1, Comm: []byte("sleep"), Signal: syscall.SIGKILL, Age: time.Second,
			Args: [][]byte{[]byte("sleep"), []byte("1000")}},
		{Time: when, PID: 4246, TID: 4246, PPID: 1, Comm: []byte("crash"), Signal: syscall.SIGSEGV, Core: true,
			Args: [][]byte{[]byte("crash")}, ArgsTruncated: true},
	}
	testkit.Golden(t, "exit.table", printAll(t, output.Table, ExitFields(ExitFieldOptions{}), exits))
	testkit.Golden(t, "exit-T.table", printAll(t, output.Table, ExitFields(ExitFieldOptions{Timestamps: true}), exits))
	testkit.Golden(t, "exit.json", printAll(t, output.JSON, ExitFields(ExitFieldOptions{}), exits))
}
