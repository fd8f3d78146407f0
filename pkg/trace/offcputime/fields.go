package offcputime

import (
	"github.com/bpfkit/bpfkit/internal/output"
)

// Fields describes an Entry for JSON lines (the text and folded formats
// are AppendText and AppendFolded).
func Fields() []output.Field[Entry] {
	return []output.Field[Entry]{
		{Key: "pid", JSON: func(b []byte, e *Entry) []byte { return output.AppendUint(b, e.PID) }},
		{Key: "tid", JSON: func(b []byte, e *Entry) []byte { return output.AppendUint(b, e.TID) }},
		{Key: "comm", JSON: func(b []byte, e *Entry) []byte { return output.AppendJSONString(b, []byte(e.Comm)) }},
		{Key: "kernel_stack", Omit: func(e *Entry) bool { return e.Kernel == nil },
			JSON: func(b []byte, e *Entry) []byte { return appendStrings(b, e.Kernel) }},
		{Key: "user_stack", Omit: func(e *Entry) bool { return e.User == nil },
			JSON: func(b []byte, e *Entry) []byte { return appendStrings(b, e.User) }},
		{Key: "kernel_stack_lost", Omit: func(e *Entry) bool { return !e.KernelLost },
			JSON: func(b []byte, e *Entry) []byte { return output.AppendBool(b, true) }},
		{Key: "user_stack_lost", Omit: func(e *Entry) bool { return !e.UserLost },
			JSON: func(b []byte, e *Entry) []byte { return output.AppendBool(b, true) }},
		{Key: "total_us", JSON: func(b []byte, e *Entry) []byte { return output.AppendInt(b, e.Total.Microseconds()) }},
		{Key: "count", JSON: func(b []byte, e *Entry) []byte { return output.AppendUint(b, e.Count) }},
	}
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = output.AppendJSONString(b, []byte(s))
	}
	return append(b, ']')
}
