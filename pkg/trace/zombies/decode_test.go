package zombies

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/bpfkit/bpfkit/pkg/trace"
)

// FuzzDecode: any record bytes decode without a panic; short records are
// refused, and a whole one decodes to what it holds.
func FuzzDecode(f *testing.F) {
	rec := zombiesZombieEvent{BootNs: 1e9, ZombieNs: 5e6, Pid: 42, Ppid: 1, Status: 7 << 8}
	copy(rec.Comm[:], []int8{'s', 'h'})
	whole := unsafe.Slice((*byte)(unsafe.Pointer(&rec)), recordSize)
	f.Add(append([]byte(nil), whole...))
	f.Add(whole[:recordSize-1])
	f.Add([]byte{})
	f.Add(append(bytes.Repeat([]byte{0xff}, recordSize), 1, 2, 3))
	clock := trace.NewClock()
	f.Fuzz(func(t *testing.T, raw []byte) {
		var e Event
		err := decode(&e, raw, clock)
		if len(raw) < recordSize {
			if err == nil {
				t.Fatalf("a %d-byte record decoded", len(raw))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		h := (*zombiesZombieEvent)(unsafe.Pointer(&raw[0]))
		if e.PID != h.Pid || e.PPID != h.Ppid || e.Zombie.Nanoseconds() != int64(h.ZombieNs) || len(e.Comm) > 16 || len(e.ParentComm) > 16 {
			t.Fatalf("decoded %+v from %+v", e, *h)
		}
		if e.Signal == 0 && e.ExitCode != int(h.Status>>8&0xff) {
			t.Fatalf("exit code %d from status %#x", e.ExitCode, h.Status)
		}
	})
}
