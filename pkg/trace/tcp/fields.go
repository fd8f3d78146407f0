package tcp

import (
	"time"

	"github.com/bpfkit/bpfkit/internal/output"
)

type field = output.Field[Event]

func timeFields(timestamps bool) []field {
	var fs []field
	if timestamps {
		fs = append(fs, field{Header: "TIME", Width: -15,
			Text: func(b []byte, e *Event) []byte { return output.AppendClock(b, e.Time) }})
	}
	return append(fs, field{Key: "time",
		JSON: func(b []byte, e *Event) []byte { return output.AppendJSONTime(b, e.Time) }})
}

var (
	pidField = field{Header: "PID", Key: "pid", Width: 7,
		Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.PID) },
		JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.PID) }}
	commField = field{Header: "COMM", Key: "comm", Width: -16,
		Text: func(b []byte, e *Event) []byte { return output.AppendPrintable(b, e.Comm) },
		JSON: func(b []byte, e *Event) []byte { return output.AppendJSONString(b, e.Comm) }}
	familyField = field{Header: "IP", Key: "family", Width: 2,
		Text: func(b []byte, e *Event) []byte {
			if e.Family == afInet6 {
				return append(b, '6')
			}
			return append(b, '4')
		},
		JSON: func(b []byte, e *Event) []byte {
			if e.Family == afInet6 {
				return append(b, `"IPv6"`...)
			}
			return append(b, `"IPv4"`...)
		}}
	durationField = field{Header: "DURATION", Key: "duration_ns", Width: 10,
		Text: func(b []byte, e *Event) []byte { return append(b, e.Duration.Round(time.Microsecond).String()...) },
		JSON: func(b []byte, e *Event) []byte { return output.AppendInt(b, e.Duration.Nanoseconds()) }}
)

// addrFields are saddr, sport, daddr, dport.
func addrFields() []field {
	return []field{
		{Header: "SADDR", Key: "saddr", Width: 15,
			Text: func(b []byte, e *Event) []byte { return e.Src.Addr().AppendTo(b) }},
		{Header: "SPORT", Key: "sport", Width: 5,
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.Src.Port()) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.Src.Port()) }},
		{Header: "DADDR", Key: "daddr", Width: 15,
			Text: func(b []byte, e *Event) []byte { return e.Dst.Addr().AppendTo(b) }},
		{Header: "DPORT", Key: "dport", Width: 5,
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.Dst.Port()) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.Dst.Port()) }},
	}
}

// LifeFields are tcplife's columns and JSON keys.
func LifeFields(timestamps bool) []field {
	fs := append(timeFields(timestamps), pidField, commField, familyField)
	fs = append(fs, addrFields()...)
	return append(fs,
		field{Header: "TX_BYTES", Key: "tx_bytes", Width: 10,
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.TxBytes) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.TxBytes) }},
		field{Header: "RX_BYTES", Key: "rx_bytes", Width: 10,
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.RxBytes) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.RxBytes) }},
		durationField,
	)
}

// StateFields are tcpstates' columns and JSON keys.
func StateFields(timestamps bool) []field {
	fs := append(timeFields(timestamps), pidField, commField)
	fs = append(fs, addrFields()...)
	return append(fs,
		field{Header: "OLDSTATE", Key: "old_state", Width: -12,
			Text: func(b []byte, e *Event) []byte { return append(b, e.OldState.String()...) }},
		field{Header: "NEWSTATE", Key: "new_state", Width: -12,
			Text: func(b []byte, e *Event) []byte { return append(b, e.NewState.String()...) }},
		durationField,
	)
}

// RetransFields are tcpretrans' columns and JSON keys.
func RetransFields(timestamps bool) []field {
	fs := append(timeFields(timestamps), pidField)
	fs = append(fs, addrFields()...)
	return append(fs,
		field{Header: "STATE", Key: "state", Width: -12,
			Text: func(b []byte, e *Event) []byte { return append(b, e.NewState.String()...) }},
		field{Header: "KIND", Key: "kind", Width: 0,
			Text: func(b []byte, e *Event) []byte { return append(b, e.Kind.String()...) }},
	)
}

// CountFields are tcpretrans --count's columns and JSON keys.
func CountFields() []output.Field[Count] {
	type cf = output.Field[Count]
	return []cf{
		{Header: "PID", Key: "pid", Width: 7,
			Text: func(b []byte, c *Count) []byte { return output.AppendUint(b, c.PID) },
			JSON: func(b []byte, c *Count) []byte { return output.AppendUint(b, c.PID) }},
		{Header: "COMM", Key: "comm", Width: -16,
			Text: func(b []byte, c *Count) []byte { return output.AppendPrintable(b, []byte(c.Comm)) },
			JSON: func(b []byte, c *Count) []byte { return output.AppendJSONString(b, []byte(c.Comm)) }},
		{Header: "SADDR", Key: "saddr", Width: 15,
			Text: func(b []byte, c *Count) []byte { return c.Src.Addr().AppendTo(b) }},
		{Header: "SPORT", Key: "sport", Width: 5,
			Text: func(b []byte, c *Count) []byte { return output.AppendUint(b, c.Src.Port()) },
			JSON: func(b []byte, c *Count) []byte { return output.AppendUint(b, c.Src.Port()) }},
		{Header: "DADDR", Key: "daddr", Width: 15,
			Text: func(b []byte, c *Count) []byte { return c.Dst.Addr().AppendTo(b) }},
		{Header: "DPORT", Key: "dport", Width: 5,
			Text: func(b []byte, c *Count) []byte { return output.AppendUint(b, c.Dst.Port()) },
			JSON: func(b []byte, c *Count) []byte { return output.AppendUint(b, c.Dst.Port()) }},
		{Header: "RETRANS", Key: "retrans", Width: 8,
			Text: func(b []byte, c *Count) []byte { return output.AppendUint(b, c.Retrans) },
			JSON: func(b []byte, c *Count) []byte { return output.AppendUint(b, c.Retrans) }},
		{Header: "LOSS_PROBES", Key: "loss_probes", Width: 0,
			Text: func(b []byte, c *Count) []byte { return output.AppendUint(b, c.LossProbes) },
			JSON: func(b []byte, c *Count) []byte { return output.AppendUint(b, c.LossProbes) }},
	}
}
