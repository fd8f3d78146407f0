package filetop

import (
	"github.com/bpfkit/bpfkit/internal/output"
)

// FieldOptions choose the columns.
type FieldOptions struct {
	PerProcess bool // PID column instead of TID; JSON leaves tid out
}

// Fields describes a Row for every output format. The table shows KiB
// (rounded down, like bcc's filetop); JSON has exact bytes.
func Fields(o FieldOptions) []output.Field[Row] {
	pid := output.Field[Row]{Key: "pid", Width: 7,
		Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.PID) },
		JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.PID) }}
	tid := output.Field[Row]{Key: "tid", Width: 7,
		Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.TID) },
		JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.TID) }}
	if o.PerProcess {
		pid.Header = "PID"
		tid.Key = ""
	} else {
		tid.Header = "TID"
	}
	return []output.Field[Row]{
		{Key: "time",
			JSON: func(b []byte, r *Row) []byte { return output.AppendJSONTime(b, r.Time) }},
		pid, tid,
		{Header: "COMM", Key: "comm", Width: -16,
			Text: func(b []byte, r *Row) []byte { return output.AppendPrintable(b, []byte(r.Comm)) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendJSONString(b, []byte(r.Comm)) }},
		{Header: "READS", Key: "reads", Width: 7,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Reads) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Reads) }},
		{Header: "WRITES", Key: "writes", Width: 7,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Writes) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Writes) }},
		{Header: "R_KB", Width: 8,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.ReadBytes/1024) }},
		{Key: "read_bytes",
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.ReadBytes) }},
		{Header: "W_KB", Width: 8,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.WriteBytes/1024) }},
		{Key: "write_bytes",
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.WriteBytes) }},
		{Header: "T", Key: "type", Width: -1,
			Text: func(b []byte, r *Row) []byte { return append(b, byte(r.Type)) }},
		{Header: "FILE", Key: "path",
			Text: func(b []byte, r *Row) []byte {
				b = output.AppendPrintable(b, []byte(r.Path))
				if r.PathTruncated {
					b = append(b, "...[truncated]"...)
				}
				if r.Deleted {
					b = append(b, " (deleted)"...)
				}
				return b
			},
			JSON: func(b []byte, r *Row) []byte { return output.AppendJSONString(b, []byte(r.Path)) }},
		{Key: "deleted", Omit: func(r *Row) bool { return !r.Deleted },
			JSON: func(b []byte, _ *Row) []byte { return output.AppendBool(b, true) }},
		{Key: "path_truncated", Omit: func(r *Row) bool { return !r.PathTruncated },
			JSON: func(b []byte, _ *Row) []byte { return output.AppendBool(b, true) }},
	}
}
