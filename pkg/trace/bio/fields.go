package bio

import (
	"time"

	"github.com/bpfkit/bpfkit/internal/output"
)

// HistFields describes a Report for JSON lines, in runqlat's shape (time,
// unit, buckets) with disk and flags where histograms are split. The
// table format prints histograms with AppendHistText instead.
func HistFields(cfg Config) []output.Field[Report] {
	fs := []output.Field[Report]{
		{Key: "time", JSON: func(b []byte, r *Report) []byte { return output.AppendJSONTime(b, r.Time) }},
		{Key: "unit", JSON: func(b []byte, r *Report) []byte { return output.AppendJSONString(b, []byte(r.Unit)) }},
	}
	if cfg.ByDisk {
		fs = append(fs, output.Field[Report]{Key: "disk",
			JSON: func(b []byte, r *Report) []byte { return output.AppendJSONString(b, []byte(r.Disk)) }})
	}
	if cfg.ByFlags {
		fs = append(fs, output.Field[Report]{Key: "flags",
			JSON: func(b []byte, r *Report) []byte { return output.AppendJSONString(b, []byte(r.Flags)) }})
	}
	return append(fs, output.Field[Report]{Key: "buckets",
		JSON: func(b []byte, r *Report) []byte { return output.AppendLog2JSON(b, r.Buckets[:]) }})
}

// AppendHistText appends a report as bcc's biolatency prints it: a title
// line naming the disk and flags when split, then the histogram.
func AppendHistText(b []byte, r *Report) []byte {
	if r.Disk != "" || r.Flags != "" {
		b = append(b, '\n')
		if r.Disk != "" {
			b = append(b, "disk = "...)
			b = output.AppendPrintable(b, []byte(r.Disk))
			if r.Flags != "" {
				b = append(b, ' ')
			}
		}
		if r.Flags != "" {
			b = append(b, "flags = "...)
			b = append(b, r.Flags...)
		}
		b = append(b, '\n')
	}
	return output.AppendLog2Hist(b, r.Buckets[:], r.Unit)
}

// appendMs appends d in milliseconds with three decimals.
func appendMs(b []byte, d time.Duration) []byte {
	us := uint64(d / time.Microsecond)
	b = output.AppendUint(b, us/1000)
	b = append(b, '.')
	f := us % 1000
	b = append(b, byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
	return b
}

// EventFields describes an Event. JSON has exactly time, pid, comm, disk,
// rwbs, sector, bytes, queue_ns, service_ns and cgroup; the table shows
// QUE(ms) with queued set, like bcc's biosnoop -Q.
func EventFields(queued bool) []output.Field[Event] {
	fs := []output.Field[Event]{
		{Header: "TIME", Key: "time", Width: -15,
			Text: func(b []byte, e *Event) []byte { return output.AppendClock(b, e.Time) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendJSONTime(b, e.Time) }},
		{Header: "COMM", Width: -16,
			Text: func(b []byte, e *Event) []byte { return output.AppendPrintable(b, e.Comm) }},
		{Header: "PID", Key: "pid", Width: 7,
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.PID) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.PID) }},
		{Key: "comm",
			JSON: func(b []byte, e *Event) []byte { return output.AppendJSONString(b, e.Comm) }},
		{Header: "DISK", Key: "disk", Width: -9,
			Text: func(b []byte, e *Event) []byte { return output.AppendPrintable(b, []byte(e.Disk)) }},
		{Header: "T", Key: "rwbs", Width: -4,
			Text: func(b []byte, e *Event) []byte { return append(b, e.RWBS...) }},
		{Header: "SECTOR", Key: "sector", Width: 12,
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.Sector) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.Sector) }},
		{Header: "BYTES", Key: "bytes", Width: 8,
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.Bytes) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.Bytes) }},
		{Key: "queue_ns",
			JSON: func(b []byte, e *Event) []byte { return output.AppendInt(b, int64(e.Queue)) }},
		{Key: "service_ns",
			JSON: func(b []byte, e *Event) []byte { return output.AppendInt(b, int64(e.Service)) }},
		{Key: "cgroup",
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.Cgroup) }},
	}
	if queued {
		fs = append(fs, output.Field[Event]{Header: "QUE(ms)", Width: 8,
			Text: func(b []byte, e *Event) []byte { return appendMs(b, e.Queue) }})
	}
	return append(fs, output.Field[Event]{Header: "LAT(ms)", Width: 8,
		Text: func(b []byte, e *Event) []byte { return appendMs(b, e.Service) }})
}

// TopFields describes a Row. The table shows KiB and the mean latency in
// ms; JSON has exact bytes and avg_ns.
func TopFields() []output.Field[Row] {
	return []output.Field[Row]{
		{Key: "time",
			JSON: func(b []byte, r *Row) []byte { return output.AppendJSONTime(b, r.Time) }},
		{Header: "PID", Key: "pid", Width: 7,
			Text: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.PID) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.PID) }},
		{Header: "COMM", Key: "comm", Width: -16,
			Text: func(b []byte, r *Row) []byte { return output.AppendPrintable(b, []byte(r.Comm)) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendJSONString(b, []byte(r.Comm)) }},
		{Header: "DISK", Key: "disk", Width: -9,
			Text: func(b []byte, r *Row) []byte { return output.AppendPrintable(b, []byte(r.Disk)) }},
		{Key: "cgroup",
			JSON: func(b []byte, r *Row) []byte { return output.AppendUint(b, r.Cgroup) }},
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
		{Header: "AVG_ms", Key: "avg_ns", Width: 8,
			Text: func(b []byte, r *Row) []byte { return appendMs(b, r.Avg()) },
			JSON: func(b []byte, r *Row) []byte { return output.AppendInt(b, int64(r.Avg())) }},
	}
}
