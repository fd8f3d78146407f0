package execsnoop

import (
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/output"
)

// FieldOptions choose execsnoop's optional columns.
type FieldOptions struct {
	Timestamps bool // TIME column in the table (JSON always has time)
	Quote      bool // quote each argument in the table
	Cwd        bool // CWD column; JSON adds cwd
}

// Fields describes an exec Event for every output format.
func Fields(o FieldOptions) []output.Field[Event] {
	timeField := output.Field[Event]{
		Key:  "time",
		Text: func(b []byte, e *Event) []byte { return e.Time.AppendFormat(b, "15:04:05.000000") },
		JSON: func(b []byte, e *Event) []byte { return output.AppendJSONTime(b, e.Time) },
	}
	if o.Timestamps {
		timeField.Header, timeField.Width = "TIME", -15
	}
	fs := []output.Field[Event]{timeField,
		{Header: "PCOMM", Key: "comm", Width: -16,
			Text: func(b []byte, e *Event) []byte { return output.AppendPrintable(b, e.Comm) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendJSONString(b, e.Comm) }},
		{Header: "PID", Key: "pid", Width: 7,
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.PID) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.PID) }},
		{Header: "PPID", Key: "ppid", Width: 7,
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.PPID) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.PPID) }},
		{Header: "UID", Key: "uid", Width: 6,
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.UID) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.UID) }},
		{Header: "RET", Key: "ret", Width: 7,
			Text: func(b []byte, e *Event) []byte { return appendRet(b, e.Ret) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendInt(b, e.Ret) }},
		{Key: "filename",
			JSON: func(b []byte, e *Event) []byte { return output.AppendJSONString(b, e.Filename) }},
	}
	if o.Cwd {
		fs = append(fs, output.Field[Event]{Header: "CWD", Key: "cwd", Width: -24,
			Text: func(b []byte, e *Event) []byte {
				return markTruncated(output.AppendPrintable(b, e.Cwd), e.CwdTruncated)
			},
			JSON: func(b []byte, e *Event) []byte { return output.AppendJSONString(b, e.Cwd) }})
	}
	fs = append(fs,
		output.Field[Event]{Header: "ARGS", Key: "args",
			Text: func(b []byte, e *Event) []byte { return AppendArgs(b, e.Args, e.Truncated, o.Quote) },
			JSON: func(b []byte, e *Event) []byte { return AppendJSONArgs(b, e.Args) }},
		output.Field[Event]{Key: "truncated", Omit: func(e *Event) bool { return !e.Truncated },
			JSON: func(b []byte, e *Event) []byte { return output.AppendBool(b, true) }},
	)
	return fs
}

// ExitFieldOptions choose exitsnoop's optional columns.
type ExitFieldOptions struct {
	Timestamps bool // TIME column in the table (JSON always has time)
}

// ExitFields describes an ExitEvent for every output format.
func ExitFields(o ExitFieldOptions) []output.Field[ExitEvent] {
	timeField := output.Field[ExitEvent]{
		Key:  "time",
		Text: func(b []byte, e *ExitEvent) []byte { return e.Time.AppendFormat(b, "15:04:05.000000") },
		JSON: func(b []byte, e *ExitEvent) []byte { return output.AppendJSONTime(b, e.Time) },
	}
	if o.Timestamps {
		timeField.Header, timeField.Width = "TIME", -15
	}
	return []output.Field[ExitEvent]{timeField,
		{Header: "PCOMM", Key: "comm", Width: -16,
			Text: func(b []byte, e *ExitEvent) []byte { return output.AppendPrintable(b, e.Comm) },
			JSON: func(b []byte, e *ExitEvent) []byte { return output.AppendJSONString(b, e.Comm) }},
		{Header: "PID", Key: "pid", Width: 7,
			Text: func(b []byte, e *ExitEvent) []byte { return output.AppendUint(b, e.PID) },
			JSON: func(b []byte, e *ExitEvent) []byte { return output.AppendUint(b, e.PID) }},
		{Header: "PPID", Key: "ppid", Width: 7,
			Text: func(b []byte, e *ExitEvent) []byte { return output.AppendUint(b, e.PPID) },
			JSON: func(b []byte, e *ExitEvent) []byte { return output.AppendUint(b, e.PPID) }},
		{Header: "TID", Key: "tid", Width: 7,
			Text: func(b []byte, e *ExitEvent) []byte { return output.AppendUint(b, e.TID) },
			JSON: func(b []byte, e *ExitEvent) []byte { return output.AppendUint(b, e.TID) }},
		{Header: "AGE(s)", Width: 9,
			Text: func(b []byte, e *ExitEvent) []byte { return strconv.AppendFloat(b, e.Age.Seconds(), 'f', 3, 64) }},
		{Header: "EXIT", Width: -22,
			Text: func(b []byte, e *ExitEvent) []byte { return appendExit(b, e) }},
		{Key: "exit_code",
			JSON: func(b []byte, e *ExitEvent) []byte { return strconv.AppendInt(b, int64(e.ExitCode), 10) }},
		{Key: "signal",
			JSON: func(b []byte, e *ExitEvent) []byte { return strconv.AppendInt(b, int64(e.Signal), 10) }},
		{Key: "core",
			JSON: func(b []byte, e *ExitEvent) []byte { return output.AppendBool(b, e.Core) }},
		{Key: "age_ns",
			JSON: func(b []byte, e *ExitEvent) []byte { return strconv.AppendInt(b, int64(e.Age), 10) }},
		{Header: "ARGS", Key: "args", Omit: func(e *ExitEvent) bool { return e.Args == nil },
			Text: func(b []byte, e *ExitEvent) []byte { return AppendArgs(b, e.Args, e.ArgsTruncated, false) },
			JSON: func(b []byte, e *ExitEvent) []byte { return AppendJSONArgs(b, e.Args) }},
		{Key: "args_truncated", Omit: func(e *ExitEvent) bool { return !e.ArgsTruncated },
			JSON: func(b []byte, e *ExitEvent) []byte { return output.AppendBool(b, true) }},
	}
}

// appendExit shows an exit status as a number, a death by signal by the
// signal's name.
func appendExit(b []byte, e *ExitEvent) []byte {
	if e.Signal == 0 {
		return strconv.AppendInt(b, int64(e.ExitCode), 10)
	}
	b = appendSignal(b, e.Signal)
	if e.Core {
		b = append(b, " (core dumped)"...)
	}
	return b
}

func appendSignal(b []byte, s syscall.Signal) []byte {
	if name := unix.SignalName(s); name != "" {
		return append(b, name...)
	}
	return strconv.AppendInt(append(b, "signal "...), int64(s), 10)
}

// appendRet shows 0, or a failure as -ENAME.
func appendRet(b []byte, ret int32) []byte {
	if ret >= 0 {
		return output.AppendInt(b, ret)
	}
	if name := unix.ErrnoName(syscall.Errno(-ret)); name != "" {
		return append(append(b, '-'), name...)
	}
	return output.AppendInt(b, ret)
}

// AppendArgs appends arguments for a terminal, separated by spaces; with
// quote, each in double quotes (inner quotes escaped), so that arguments
// holding spaces stay apart.
func AppendArgs(b []byte, args [][]byte, truncated, quote bool) []byte {
	for i, a := range args {
		if i > 0 {
			b = append(b, ' ')
		}
		if !quote {
			b = output.AppendPrintable(b, a)
			continue
		}
		b = append(b, '"')
		start := len(b)
		b = output.AppendPrintable(b, a)
		for j := start; j < len(b); j++ {
			if b[j] == '"' {
				b = append(b[:j+1], b[j:]...)
				b[j] = '\\'
				j++
			}
		}
		b = append(b, '"')
	}
	return markTruncated(b, truncated)
}

// AppendJSONArgs appends arguments as a JSON array of strings.
func AppendJSONArgs(b []byte, args [][]byte) []byte {
	b = append(b, '[')
	for i, a := range args {
		if i > 0 {
			b = append(b, ',')
		}
		b = output.AppendJSONString(b, a)
	}
	return append(b, ']')
}

func markTruncated(b []byte, truncated bool) []byte {
	if truncated {
		b = append(b, "...[truncated]"...)
	}
	return b
}
