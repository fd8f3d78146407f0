package schedrecord

import (
	"bytes"
	"encoding/json"
	"testing"
	"unsafe"
)

const recordSize = int(unsafe.Sizeof(schedrecordSchedEvent{}))

func schedRecord(e schedrecordSchedEvent) []byte {
	return bytes.Clone(unsafe.Slice((*byte)(unsafe.Pointer(&e)), recordSize))
}

// FuzzTimeline feeds raw ring buffer records, back to back in data (the
// last may be short), to the timeline a recording writes: it must never
// panic, must reject a short record, and must write valid JSON whatever
// the records hold (comms with any bytes, times going backwards, unknown
// kinds). Seeds: f.Add below and testdata/fuzz/FuzzTimeline.
func FuzzTimeline(f *testing.F) {
	var comm [16]int8
	for i, c := range "a\"b\\\xff\n" {
		comm[i] = int8(c)
	}
	sw := schedRecord(schedrecordSchedEvent{Kind: kindSwitch, Cpu: 1, Ts: 2000, PrevTid: 5, PrevPid: 5, PrevState: 1,
		NextTid: 6, NextPid: 6, NextComm: comm})
	wk := schedRecord(schedrecordSchedEvent{Kind: kindWakeupNew, Cpu: 0, Ts: 1000, NextTid: 5, NextPid: 5, NextComm: comm})
	f.Add(append(append(bytes.Clone(sw), wk...), sw...), uint8(0))
	f.Add(append(bytes.Clone(wk), sw[:7]...), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, maxEvents uint8) {
		var out bytes.Buffer
		tl := newTimeline(&out, 1000, uint64(maxEvents))
		for len(data) > 0 {
			n := min(len(data), recordSize)
			err := tl.handle(data[:n])
			if n < recordSize {
				if err == nil {
					t.Fatalf("a %d-byte record (want %d) was accepted", n, recordSize)
				}
				break
			}
			if err != nil {
				break // the cap: ErrStop
			}
			data = data[n:]
		}
		if err := tl.finish(); err != nil {
			t.Fatal(err)
		}
		var doc struct {
			TraceEvents []map[string]any `json:"traceEvents"`
		}
		if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out.Bytes())
		}
		if tl.st.Written > uint64(len(doc.TraceEvents)) {
			t.Fatalf("%d events written, %d in the JSON", tl.st.Written, len(doc.TraceEvents))
		}
	})
}
