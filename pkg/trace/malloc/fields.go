package malloc

import (
	"strconv"
	"strings"

	"github.com/bpfkit/bpfkit/internal/output"
)

// Fields describes a Row for every output format. JSON keys: function,
// calls, bytes, allocator.
func Fields() []output.Field[Row] {
	return []output.Field[Row]{
		{Header: "FUNCTION", Key: "function", Width: -24,
			Text: func(b []byte, r *Row) []byte { return append(b, r.Function...) }},
		{Header: "CALLS", Key: "calls", Width: 12,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Calls) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Calls) }},
		{Header: "BYTES", Key: "bytes", Width: 16,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Bytes) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Bytes) }},
		{Header: "ALLOCATOR", Key: "allocator", Width: -10,
			Text: func(b []byte, r *Row) []byte { return append(b, r.Allocator...) }},
	}
}

// AppendText appends a stack the way bcc's memleak prints one: its bytes
// and calls (or blocks), then its frames, innermost first.
func AppendText(b []byte, s *Stack, what string) []byte {
	b = strconv.AppendUint(append(b, '\t'), s.Bytes, 10)
	b = append(b, " bytes in "...)
	b = strconv.AppendUint(b, s.Calls, 10)
	b = append(append(append(b, ' '), what...), " from stack\n"...)
	if s.Frames == nil {
		b = append(b, "\t\t[Missed User Stack]\n"...)
	}
	for _, f := range s.Frames {
		b = append(append(append(b, "\t\t"...), f...), '\n')
	}
	return b
}

// AppendFolded appends a stack as one line of the folded format flame
// graph tools read: comm;frames (outermost first) and the bytes.
func AppendFolded(b []byte, comm string, s *Stack) []byte {
	b = append(b, folder.Replace(comm)...)
	if s.Frames == nil {
		b = append(b, ";[Missed User Stack]"...)
	}
	for i := len(s.Frames) - 1; i >= 0; i-- {
		b = append(append(b, ';'), folder.Replace(s.Frames[i])...)
	}
	return append(strconv.AppendUint(append(b, ' '), s.Bytes, 10), '\n')
}

var folder = strings.NewReplacer(";", ":", " ", "_", "\n", "_")
