package cswitch

import (
	"strconv"

	"github.com/bpfkit/bpfkit/internal/output"
)

// Fields describes a Row for every output format: the table shows rates
// per second like `pidstat -w`; JSON gives the exact counts and the
// interval they were counted over.
func Fields(perProcess bool) []output.Field[Row] {
	fs := []output.Field[Row]{
		{Header: "TIME", Key: "time", Width: -8,
			Text: func(b []byte, r *Row) []byte { return r.Time.AppendFormat(b, "15:04:05") },
			JSON: func(b []byte, r *Row) []byte { return output.AppendJSONTime(b, r.Time) }},
		{Header: "PID", Key: "pid", Width: 7,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.PID) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.PID) }},
	}
	if !perProcess {
		fs = append(fs, output.Field[Row]{Header: "TID", Key: "tid", Width: 7,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.TID) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.TID) }})
	}
	return append(fs,
		output.Field[Row]{Header: "CSWCH/S", Width: 10,
			Text: func(b []byte, r *Row) []byte { return appendRate(b, r.Voluntary, r) }},
		output.Field[Row]{Header: "NVCSWCH/S", Width: 10,
			Text: func(b []byte, r *Row) []byte { return appendRate(b, r.Involuntary, r) }},
		output.Field[Row]{Header: "COMMAND", Key: "comm",
			Text: func(b []byte, r *Row) []byte { return output.AppendPrintable(b, []byte(r.Comm)) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendJSONString(b, []byte(r.Comm)) }},
		output.Field[Row]{Key: "voluntary",
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Voluntary) }},
		output.Field[Row]{Key: "involuntary",
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Involuntary) }},
		output.Field[Row]{Key: "interval_ns",
			JSON: func(b []byte, r *Row) []byte { return output.AppendInt(b, r.Interval.Nanoseconds()) }},
	)
}

// appendRate appends n per second over the row's interval, 2 decimals.
func appendRate(b []byte, n uint64, r *Row) []byte {
	s := r.Interval.Seconds()
	if s <= 0 {
		return append(b, '-')
	}
	return strconv.AppendFloat(b, float64(n)/s, 'f', 2, 64)
}
