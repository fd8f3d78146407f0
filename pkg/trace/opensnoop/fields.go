package opensnoop

import (
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/bpfkit/bpfkit/internal/output"
)

// FieldOptions choose the optional columns.
type FieldOptions struct {
	Timestamps bool // TIME column in the table (JSON always has time)
	FullPath   bool // PATH shows the absolute path; JSON adds full_path
}

// Fields describes an Event for every output format.
func Fields(o FieldOptions) []output.Field[Event] {
	var fs []output.Field[Event]
	timeField := output.Field[Event]{
		Key:  "time",
		Text: func(b []byte, e *Event) []byte { return output.AppendClock(b, e.Time) },
		JSON: func(b []byte, e *Event) []byte { return output.AppendJSONTime(b, e.Time) },
	}
	if o.Timestamps {
		timeField.Header, timeField.Width = "TIME", -15
	}
	fs = append(fs, timeField,
		output.Field[Event]{Header: "PID", Key: "pid", Width: 7,
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.PID) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.PID) }},
		output.Field[Event]{Header: "TID", Key: "tid", Width: 7,
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.TID) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.TID) }},
		output.Field[Event]{Header: "UID", Key: "uid", Width: 6,
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.UID) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.UID) }},
		output.Field[Event]{Header: "COMM", Key: "comm", Width: -16,
			Text: func(b []byte, e *Event) []byte { return output.AppendPrintable(b, e.Comm) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendJSONString(b, e.Comm) }},
		output.Field[Event]{Header: "FD", Key: "fd", Width: 4,
			Text: func(b []byte, e *Event) []byte { return output.AppendInt(b, e.FD) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendInt(b, e.FD) }},
		output.Field[Event]{Header: "ERR", Key: "errno", Width: -7,
			Text: func(b []byte, e *Event) []byte { return appendErrno(b, e.Errno) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, uint32(e.Errno)) }},
		output.Field[Event]{Header: "FLAGS", Key: "flags", Width: -24,
			Text: func(b []byte, e *Event) []byte { return AppendFlags(b, e.Flags) }},
		output.Field[Event]{Header: "MODE", Key: "mode", Width: 5,
			Text: func(b []byte, e *Event) []byte { return appendMode(b, e) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.Mode) }},
	)
	pathField := output.Field[Event]{Key: "path",
		JSON: func(b []byte, e *Event) []byte { return output.AppendJSONString(b, e.Path) }}
	if !o.FullPath {
		pathField.Header = "PATH"
		pathField.Text = func(b []byte, e *Event) []byte {
			if e.NameUnread && len(e.Path) == 0 {
				return append(b, "(name unreadable)"...)
			}
			return markTruncated(output.AppendPrintable(b, e.Path), e.PathTruncated)
		}
	}
	fs = append(fs, pathField)
	if o.FullPath {
		fs = append(fs, output.Field[Event]{Header: "PATH", Key: "full_path",
			Text: func(b []byte, e *Event) []byte {
				return markTruncated(output.AppendPrintable(b, e.FullPath), e.FullPathTruncated)
			},
			JSON: func(b []byte, e *Event) []byte { return output.AppendJSONString(b, e.FullPath) }},
			output.Field[Event]{Key: "full_path_from_name", Omit: func(e *Event) bool { return !e.FullPathFromName },
				JSON: func(b []byte, e *Event) []byte { return output.AppendBool(b, true) }},
			output.Field[Event]{Key: "full_path_truncated", Omit: func(e *Event) bool { return !e.FullPathTruncated },
				JSON: func(b []byte, e *Event) []byte { return output.AppendBool(b, true) }},
		)
	}
	fs = append(fs, output.Field[Event]{Key: "path_truncated", Omit: func(e *Event) bool { return !e.PathTruncated },
		JSON: func(b []byte, e *Event) []byte { return output.AppendBool(b, true) }},
		output.Field[Event]{Key: "name_unread", Omit: func(e *Event) bool { return !e.NameUnread },
			JSON: func(b []byte, e *Event) []byte { return output.AppendBool(b, true) }})
	return fs
}

func markTruncated(b []byte, truncated bool) []byte {
	if truncated {
		b = append(b, "...[truncated]"...)
	}
	return b
}

func appendErrno(b []byte, errno unix.Errno) []byte {
	if errno == 0 {
		return append(b, '0')
	}
	if name := unix.ErrnoName(errno); name != "" {
		return append(b, name...)
	}
	return output.AppendUint(b, uint32(errno))
}

// appendMode shows the mode in octal where the kernel uses it, else "-".
func appendMode(b []byte, e *Event) []byte {
	if e.Flags&unix.O_CREAT == 0 && e.Flags&unix.O_TMPFILE != unix.O_TMPFILE {
		return append(b, '-')
	}
	b = append(b, '0')
	return strconv.AppendUint(b, uint64(e.Mode), 8)
}

// Kernel flag values not exported to 64-bit user space.
const kernelOLargefile = 0o100000

var flagNames = []struct {
	bit  uint32
	name string
}{
	{unix.O_CREAT, "O_CREAT"},
	{unix.O_EXCL, "O_EXCL"},
	{unix.O_NOCTTY, "O_NOCTTY"},
	{unix.O_TRUNC, "O_TRUNC"},
	{unix.O_APPEND, "O_APPEND"},
	{unix.O_NONBLOCK, "O_NONBLOCK"},
	{unix.O_SYNC, "O_SYNC"}, // includes O_DSYNC; checked before it
	{unix.O_DSYNC, "O_DSYNC"},
	{unix.O_ASYNC, "O_ASYNC"},
	{unix.O_DIRECT, "O_DIRECT"},
	{kernelOLargefile, "O_LARGEFILE"},
	{unix.O_TMPFILE, "O_TMPFILE"}, // includes O_DIRECTORY; checked before it
	{unix.O_DIRECTORY, "O_DIRECTORY"},
	{unix.O_NOFOLLOW, "O_NOFOLLOW"},
	{unix.O_NOATIME, "O_NOATIME"},
	{unix.O_CLOEXEC, "O_CLOEXEC"},
	{unix.O_PATH, "O_PATH"},
}

// AppendFlags appends open flags by name, like O_RDONLY|O_CLOEXEC; bits
// without a name are appended in hex.
func AppendFlags(b []byte, flags uint32) []byte {
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		b = append(b, "O_RDONLY"...)
	case unix.O_WRONLY:
		b = append(b, "O_WRONLY"...)
	case unix.O_RDWR:
		b = append(b, "O_RDWR"...)
	default:
		b = append(b, "O_ACCMODE"...)
	}
	rest := flags &^ unix.O_ACCMODE
	for _, f := range flagNames {
		if f.bit != 0 && rest&f.bit == f.bit {
			b = append(b, '|')
			b = append(b, f.name...)
			rest &^= f.bit
		}
	}
	if rest != 0 {
		b = append(b, "|0x"...)
		b = strconv.AppendUint(b, uint64(rest), 16)
	}
	return b
}
