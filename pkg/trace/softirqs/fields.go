package softirqs

import (
	"fmt"
	"time"

	"github.com/bpfkit/bpfkit/internal/output"
)

// Row is one line of output: a vector's softirqs (on one CPU with -C) over
// an interval.
type Row struct {
	Time     time.Time // end of the interval
	Interval time.Duration
	Unit     string // the histogram's: usecs or nsecs
	Stat
}

// Fields describes a Row. The table shows like bcc's softirqs the total
// time in µs; JSON keys: time, cpu (perCPU), vector, count, time_ns,
// interval_ns, and hist (hists: log2 buckets in the unit).
func Fields(perCPU, hists bool) []output.Field[Row] {
	fs := []output.Field[Row]{
		{Key: "time",
			JSON: func(b []byte, r *Row) []byte { return output.AppendJSONTime(b, r.Time) }},
	}
	if perCPU {
		fs = append(fs, output.Field[Row]{Header: "CPU", Key: "cpu", Width: 4,
			Text: func(b []byte, r *Row) []byte { return output.AppendInt(b, r.CPU) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendInt(b, r.CPU) }})
	}
	fs = append(fs,
		output.Field[Row]{Header: "SOFTIRQ", Key: "vector", Width: -10,
			Text: func(b []byte, r *Row) []byte { return append(b, r.Name...) }},
		output.Field[Row]{Header: "COUNT", Key: "count", Width: 10,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Count) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Count) }},
		output.Field[Row]{Header: "TOTAL_usecs", Key: "time_ns", Width: 12,
			Text: func(b []byte, r *Row) []byte { return output.AppendInt(b, r.Stat.Time.Microseconds()) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendInt(b, r.Stat.Time.Nanoseconds()) }},
		output.Field[Row]{Key: "interval_ns",
			JSON: func(b []byte, r *Row) []byte { return output.AppendInt(b, r.Interval.Nanoseconds()) }},
	)
	if hists {
		fs = append(fs, output.Field[Row]{Key: "hist",
			JSON: func(b []byte, r *Row) []byte { return output.AppendLog2JSON(b, r.Hist[:]) }})
	}
	return fs
}

// AppendHist appends a row's histogram as bcc's softirqs -d prints it.
func AppendHist(b []byte, r *Row) []byte {
	if r.CPU >= 0 {
		b = fmt.Appendf(b, "\nsoftirq = %s, cpu = %d\n", r.Name, r.CPU)
	} else {
		b = fmt.Appendf(b, "\nsoftirq = %s\n", r.Name)
	}
	return output.AppendLog2Hist(b, r.Hist[:], r.Unit)
}
