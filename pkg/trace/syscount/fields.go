package syscount

import "github.com/bpfkit/bpfkit/internal/output"

// FieldOptions choose the columns.
type FieldOptions struct {
	PerProcess bool // PID and COMM columns, pid and comm keys
	Latency    bool // the TIME column (total_ns is always in JSON)
}

// Fields describes a Row for every output format. JSON keys: syscall,
// count, errors, total_ns, and pid and comm per process.
func Fields(o FieldOptions) []output.Field[Row] {
	var fs []output.Field[Row]
	if o.PerProcess {
		fs = append(fs,
			output.Field[Row]{Header: "PID", Key: "pid", Width: 7,
				Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.PID) },
				JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.PID) }},
			output.Field[Row]{Header: "COMM", Key: "comm", Width: -16,
				Text: func(b []byte, r *Row) []byte { return output.AppendPrintable(b, []byte(r.Comm)) },
				JSON: func(b []byte, r *Row) []byte { return output.AppendJSONString(b, []byte(r.Comm)) }})
	}
	fs = append(fs,
		output.Field[Row]{Header: "SYSCALL", Key: "syscall", Width: -22,
			Text: func(b []byte, r *Row) []byte { return append(b, r.Name...) }},
		output.Field[Row]{Header: "COUNT", Key: "count", Width: 10,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Count) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Count) }},
		output.Field[Row]{Header: "ERRORS", Key: "errors", Width: 10,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Errors) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Errors) }},
		output.Field[Row]{Key: "total_ns",
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.TotalNS) }})
	if o.Latency {
		fs = append(fs, output.Field[Row]{Header: "TIME(us)", Width: 12,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.TotalNS/1000) }})
	}
	return fs
}
