package drops

import (
	"net/netip"
	"time"

	"github.com/bpfkit/bpfkit/internal/output"
)

// Fields describes an Event for every output format. JSON keys: time,
// reason, location, protocol, saddr, daddr, sport, dport (null when the
// packet has none), iface, netns.
func Fields(timestamps bool) []output.Field[Event] {
	var fs []output.Field[Event]
	if timestamps {
		fs = append(fs, output.Field[Event]{Header: "TIME", Width: -15,
			Text: func(b []byte, e *Event) []byte { return output.AppendClock(b, e.Time) }})
	}
	return append(fs,
		output.Field[Event]{Key: "time",
			JSON: func(b []byte, e *Event) []byte { return output.AppendJSONTime(b, e.Time) }},
		output.Field[Event]{Header: "REASON", Key: "reason", Width: -22,
			Text: func(b []byte, e *Event) []byte { return append(b, e.Reason...) }},
		output.Field[Event]{Header: "LOCATION", Key: "location", Width: -26,
			Text: func(b []byte, e *Event) []byte { return append(b, e.Location...) }},
		output.Field[Event]{Header: "PROTO", Key: "protocol", Width: -6,
			Text: func(b []byte, e *Event) []byte { return appendOr(b, e.Protocol) }},
		output.Field[Event]{Header: "SADDR", Key: "saddr", Width: -20,
			Text: func(b []byte, e *Event) []byte { return appendAddr(b, e.Saddr, e.Sport, e.HasPorts) },
			JSON: func(b []byte, e *Event) []byte { return appendJSONAddr(b, e.Saddr) }},
		output.Field[Event]{Header: "DADDR", Key: "daddr", Width: -20,
			Text: func(b []byte, e *Event) []byte { return appendAddr(b, e.Daddr, e.Dport, e.HasPorts) },
			JSON: func(b []byte, e *Event) []byte { return appendJSONAddr(b, e.Daddr) }},
		output.Field[Event]{Key: "sport",
			JSON: func(b []byte, e *Event) []byte { return appendJSONPort(b, e.Sport, e.HasPorts) }},
		output.Field[Event]{Key: "dport",
			JSON: func(b []byte, e *Event) []byte { return appendJSONPort(b, e.Dport, e.HasPorts) }},
		output.Field[Event]{Header: "IFACE", Key: "iface", Width: -10,
			Text: func(b []byte, e *Event) []byte { return appendOr(b, e.Iface) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendJSONString(b, []byte(e.Iface)) }},
		output.Field[Event]{Header: "NETNS", Key: "netns",
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.Netns) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.Netns) }},
	)
}

func appendOr(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return append(b, s...)
}

// appendAddr is addr:port as ss prints it ([addr]:port for IPv6), the
// address alone without ports, "-" without an address.
func appendAddr(b []byte, a netip.Addr, port uint16, ports bool) []byte {
	if !a.IsValid() {
		return append(b, '-')
	}
	if !ports {
		return a.AppendTo(b)
	}
	return netip.AddrPortFrom(a, port).AppendTo(b)
}

func appendJSONAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	return append(a.AppendTo(b), '"')
}

func appendJSONPort(b []byte, port uint16, ports bool) []byte {
	if !ports {
		return append(b, "null"...)
	}
	return output.AppendUint(b, port)
}

// Row is one line of a summary: the drops of one reason at one location
// over an interval.
type Row struct {
	Time     time.Time // end of the interval
	Interval time.Duration
	Count
}

// SummaryFields describes a summary Row. JSON keys: time, reason,
// location, count, interval_ns.
func SummaryFields() []output.Field[Row] {
	return []output.Field[Row]{
		{Header: "TIME", Key: "time", Width: -8,
			Text: func(b []byte, r *Row) []byte { return r.Time.AppendFormat(b, "15:04:05") },
			JSON: func(b []byte, r *Row) []byte { return output.AppendJSONTime(b, r.Time) }},
		{Header: "COUNT", Key: "count", Width: 10,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Count.Count) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Count.Count) }},
		{Header: "REASON", Key: "reason", Width: -24,
			Text: func(b []byte, r *Row) []byte { return append(b, r.Reason...) }},
		{Header: "LOCATION", Key: "location",
			Text: func(b []byte, r *Row) []byte { return append(b, r.Location...) }},
		{Key: "interval_ns",
			JSON: func(b []byte, r *Row) []byte { return output.AppendInt(b, r.Interval.Nanoseconds()) }},
	}
}
