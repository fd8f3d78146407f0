package runqlat

import (
	"github.com/bpfkit/bpfkit/internal/output"
)

// Fields describes a Report for JSON lines: time, unit, key (and comm)
// unless there is one histogram, and the buckets. The table format prints
// histograms with AppendText instead.
func Fields(key KeyBy) []output.Field[Report] {
	fs := []output.Field[Report]{
		{Key: "time", JSON: func(b []byte, r *Report) []byte { return output.AppendJSONTime(b, r.Time) }},
		{Key: "unit", JSON: func(b []byte, r *Report) []byte { return output.AppendJSONString(b, []byte(r.Unit)) }},
	}
	if key != All {
		fs = append(fs, output.Field[Report]{Key: "key",
			JSON: func(b []byte, r *Report) []byte { return output.AppendUint(b, r.Key) }})
	}
	if key == ByProcess || key == ByThread {
		fs = append(fs, output.Field[Report]{Key: "comm",
			JSON: func(b []byte, r *Report) []byte { return output.AppendJSONString(b, []byte(r.Comm)) }})
	}
	return append(fs, output.Field[Report]{Key: "buckets",
		JSON: func(b []byte, r *Report) []byte { return output.AppendLog2JSON(b, r.Buckets[:]) }})
}

// AppendText appends a report like bcc's runqlat prints it: a title line
// naming the key when there is one, then the histogram.
func AppendText(b []byte, r *Report) []byte {
	switch r.By {
	case ByProcess:
		b = append(b, "\npid = "...)
	case ByThread:
		b = append(b, "\ntid = "...)
	case ByPIDNS:
		b = append(b, "\npidns = "...)
	}
	if r.By != All {
		b = output.AppendUint(b, r.Key)
		if r.Comm != "" {
			b = append(b, ' ')
			b = output.AppendPrintable(b, []byte(r.Comm))
		}
		b = append(b, '\n')
	}
	return output.AppendLog2Hist(b, r.Buckets[:], r.Unit)
}
