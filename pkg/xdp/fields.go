package xdp

import (
	"strconv"
	"time"

	"github.com/bpfkit/bpfkit/internal/output"
)

// Row is one line of `bpfkit xdp stats` or `rule list`: a rule, a default
// action, or the malformed and non-IP counters.
type Row struct {
	Rule    *Rule  // nil for the rows below the rules
	Name    string // default, malformed, non-ip (rows without a rule)
	Action  string
	Counter         // totals
	PPS     float64 // packets per second over the last interval
	BPS     float64 // bits per second
}

// Rows turns stats into lines; with prev and dt it also fills the rates.
func Rows(s Stats, policy Policy, prev *Stats, dt time.Duration) []Row {
	var rows []Row
	for i := range s.Rules {
		rows = append(rows, Row{Rule: &s.Rules[i].Rule, Action: s.Rules[i].Action.String(), Counter: s.Rules[i].Counter})
	}
	dflt := Row{Name: "default", Action: "pass", Counter: s.DefaultPass}
	if policy == PolicyAllow {
		dflt = Row{Name: "default", Action: "drop", Counter: s.DefaultDrop}
	}
	rows = append(rows, dflt,
		Row{Name: "malformed", Action: "drop", Counter: s.Malformed},
		Row{Name: "non-ip", Action: "pass", Counter: s.NonIP})
	if prev != nil && dt > 0 {
		before := Rows(*prev, policy, nil, 0)
		byKey := map[string]Counter{}
		for _, r := range before {
			byKey[r.key()] = r.Counter
		}
		for i := range rows {
			if c, ok := byKey[rows[i].key()]; ok && rows[i].Packets >= c.Packets {
				rows[i].PPS = float64(rows[i].Packets-c.Packets) / dt.Seconds()
				rows[i].BPS = float64(rows[i].Bytes-c.Bytes) * 8 / dt.Seconds()
			}
		}
	}
	return rows
}

func (r *Row) key() string {
	if r.Rule != nil {
		return strconv.FormatUint(uint64(r.Rule.ID), 10)
	}
	return r.Name
}

func textOr(b []byte, s, none string) []byte {
	if s == "" {
		return append(b, none...)
	}
	return append(b, s...)
}

func prefixText(p interface{ IsValid() bool }, s func() string) string {
	if !p.IsValid() {
		return ""
	}
	return s()
}

func ruleField(header, key string, width int, get func(r *Rule) string) output.Field[Row] {
	return output.Field[Row]{Header: header, Key: key, Width: width,
		Text: func(b []byte, e *Row) []byte {
			if e.Rule == nil {
				return append(b, '-')
			}
			return textOr(b, get(e.Rule), "any")
		},
		JSON: func(b []byte, e *Row) []byte {
			if e.Rule == nil || get(e.Rule) == "" {
				return append(b, "null"...)
			}
			return output.AppendJSONString(b, []byte(get(e.Rule)))
		},
		Omit: func(e *Row) bool { return e.Rule == nil },
	}
}

// Fields describes Rows for the table and JSON; counters and rates as
// asked.
func Fields(counters, rates bool) []output.Field[Row] {
	fs := []output.Field[Row]{
		{Header: "ID", Key: "id", Width: -9,
			Text: func(b []byte, e *Row) []byte {
				if e.Rule == nil {
					return append(b, e.Name...)
				}
				return output.AppendUint(b, e.Rule.ID)
			},
			JSON: func(b []byte, e *Row) []byte {
				if e.Rule == nil {
					return output.AppendJSONString(b, []byte(e.Name))
				}
				return output.AppendUint(b, e.Rule.ID)
			}},
		ruleField("SRC", "src", -18, func(r *Rule) string { return prefixText(r.Src, r.Src.String) }),
		ruleField("DST", "dst", -18, func(r *Rule) string { return prefixText(r.Dst, r.Dst.String) }),
		ruleField("PROTO", "proto", -6, func(r *Rule) string { return ProtoName(r.Proto) }),
		ruleField("SPORT", "sport", -11, func(r *Rule) string {
			if r.SPort.Any() {
				return ""
			}
			return r.SPort.String()
		}),
		ruleField("DPORT", "dport", -11, func(r *Rule) string {
			if r.DPort.Any() {
				return ""
			}
			return r.DPort.String()
		}),
		{Header: "PRIO", Key: "priority", Width: 4,
			Text: func(b []byte, e *Row) []byte {
				if e.Rule == nil {
					return append(b, '-')
				}
				return output.AppendInt(b, e.Rule.Priority)
			},
			JSON: func(b []byte, e *Row) []byte { return output.AppendInt(b, e.Rule.Priority) },
			Omit: func(e *Row) bool { return e.Rule == nil }},
		{Header: "ACTION", Key: "action", Width: -16,
			Text: func(b []byte, e *Row) []byte { return append(b, e.Action...) }},
	}
	if counters {
		fs = append(fs,
			output.Field[Row]{Header: "PACKETS", Key: "packets", Width: 12,
				Text: func(b []byte, e *Row) []byte { return output.AppendUint(b, e.Packets) },
				JSON: func(b []byte, e *Row) []byte { return output.AppendUint(b, e.Packets) }},
			output.Field[Row]{Header: "BYTES", Key: "bytes", Width: 14,
				Text: func(b []byte, e *Row) []byte { return output.AppendUint(b, e.Bytes) },
				JSON: func(b []byte, e *Row) []byte { return output.AppendUint(b, e.Bytes) }})
	}
	if rates {
		fs = append(fs,
			output.Field[Row]{Header: "PKT/S", Key: "pps", Width: 11,
				Text: func(b []byte, e *Row) []byte { return strconv.AppendFloat(b, e.PPS, 'f', 0, 64) },
				JSON: func(b []byte, e *Row) []byte { return strconv.AppendFloat(b, e.PPS, 'f', 1, 64) }},
			output.Field[Row]{Header: "BIT/S", Key: "bps", Width: 0,
				Text: func(b []byte, e *Row) []byte { return appendSI(b, e.BPS) },
				JSON: func(b []byte, e *Row) []byte { return strconv.AppendFloat(b, e.BPS, 'f', 1, 64) }})
	}
	return fs
}

// appendSI writes a rate with k, M or G.
func appendSI(b []byte, v float64) []byte {
	for _, u := range []struct {
		div float64
		sfx string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if v >= u.div {
			return append(strconv.AppendFloat(b, v/u.div, 'f', 1, 64), u.sfx...)
		}
	}
	return strconv.AppendFloat(b, v, 'f', 0, 64)
}
