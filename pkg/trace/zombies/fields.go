package zombies

import (
	"time"

	"github.com/bpfkit/bpfkit/internal/output"
)

// Fields describes an Event for every output format. JSON keys: time, pid,
// ppid, comm, parent_comm, exit_code (128+N when killed by signal N, as a
// shell shows it), zombie_ns.
func Fields(timestamps bool) []output.Field[Event] {
	var fs []output.Field[Event]
	if timestamps {
		fs = append(fs, output.Field[Event]{Header: "TIME", Width: -15,
			Text: func(b []byte, e *Event) []byte { return output.AppendClock(b, e.Time) }})
	}
	return append(fs,
		output.Field[Event]{Key: "time",
			JSON: func(b []byte, e *Event) []byte { return output.AppendJSONTime(b, e.Time) }},
		output.Field[Event]{Header: "PID", Key: "pid", Width: 7,
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.PID) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.PID) }},
		output.Field[Event]{Header: "PPID", Key: "ppid", Width: 7,
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.PPID) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.PPID) }},
		output.Field[Event]{Header: "COMM", Key: "comm", Width: -16,
			Text: func(b []byte, e *Event) []byte { return output.AppendPrintable(b, e.Comm) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendJSONString(b, e.Comm) }},
		output.Field[Event]{Header: "PARENT", Key: "parent_comm", Width: -16,
			Text: func(b []byte, e *Event) []byte { return output.AppendPrintable(b, e.ParentComm) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendJSONString(b, e.ParentComm) }},
		output.Field[Event]{Header: "EXIT", Key: "exit_code", Width: 4,
			Text: func(b []byte, e *Event) []byte { return output.AppendInt(b, e.Status()) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendInt(b, e.Status()) }},
		output.Field[Event]{Header: "ZOMBIE", Key: "zombie_ns",
			Text: func(b []byte, e *Event) []byte { return append(b, e.Zombie.Round(time.Microsecond).String()...) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendInt(b, e.Zombie.Nanoseconds()) }},
	)
}
