package netrx

import (
	"github.com/bpfkit/bpfkit/internal/output"
)

// Fields describes a Row. JSON keys: time, netns, iface, queue (null when
// none was recorded), cpu, packets, bytes, polls, full_polls,
// interval_ns.
func Fields() []output.Field[Row] {
	return []output.Field[Row]{
		{Header: "TIME", Key: "time", Width: -8,
			Text: func(b []byte, r *Row) []byte { return r.Time.AppendFormat(b, "15:04:05") },
			JSON: func(b []byte, r *Row) []byte { return output.AppendJSONTime(b, r.Time) }},
		{Header: "NETNS", Key: "netns", Width: 10,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Netns) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Netns) }},
		{Header: "IFACE", Key: "iface", Width: -16,
			Text: func(b []byte, r *Row) []byte { return output.AppendPrintable(b, []byte(r.Iface)) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendJSONString(b, []byte(r.Iface)) }},
		{Header: "QUEUE", Key: "queue", Width: 5,
			Text: func(b []byte, r *Row) []byte { return appendQueue(b, r.Queue, "-") },
			JSON: func(b []byte, r *Row) []byte { return appendQueue(b, r.Queue, "null") }},
		{Header: "CPU", Key: "cpu", Width: 4,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.CPU) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.CPU) }},
		{Header: "PACKETS", Key: "packets", Width: 10,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Packets) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Packets) }},
		{Header: "BYTES", Key: "bytes", Width: 12,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Bytes) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Bytes) }},
		{Header: "POLLS", Key: "polls", Width: 8,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Polls) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Polls) }},
		{Header: "FULL", Key: "full_polls", Width: 6,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Full) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Full) }},
		{Key: "interval_ns",
			JSON: func(b []byte, r *Row) []byte { return output.AppendInt(b, r.Interval.Nanoseconds()) }},
	}
}

func appendQueue(b []byte, q int32, none string) []byte {
	if q == NoQueue {
		return append(b, none...)
	}
	return output.AppendInt(b, q)
}
