package oomkill

import (
	"github.com/bpfkit/bpfkit/internal/output"
)

// Fields describes an Event for every output format. JSON keys: time, pid,
// tgid, comm, cgroup (the trigger's memory cgroup), victim_cgroup,
// trigger_pid, trigger_tid, trigger_comm, and where the kernel gives them
// (not on 5.10) total_vm_bytes, anon_rss_bytes, file_rss_bytes, shmem_rss_bytes,
// pgtables_bytes, uid, oom_score_adj.
func Fields(timestamps bool) []output.Field[Event] {
	var fs []output.Field[Event]
	if timestamps {
		fs = append(fs, output.Field[Event]{Header: "TIME", Width: -15,
			Text: func(b []byte, e *Event) []byte { return output.AppendClock(b, e.Time) }})
	}
	str := func(header, key string, width int, get func(*Event) []byte) output.Field[Event] {
		return output.Field[Event]{Header: header, Key: key, Width: width,
			Text: func(b []byte, e *Event) []byte { return output.AppendPrintable(b, get(e)) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendJSONString(b, get(e)) }}
	}
	num := func(header, key string, width int, get func(*Event) uint32) output.Field[Event] {
		return output.Field[Event]{Header: header, Key: key, Width: width,
			Text: func(b []byte, e *Event) []byte { return output.AppendUint(b, get(e)) },
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, get(e)) }}
	}
	// figure is a victim's figure: JSON only where the kernel gives it, and
	// in kB in the table ("-" where it does not), as the kernel's log line.
	figure := func(header, key string, get func(*Event) uint64) output.Field[Event] {
		return output.Field[Event]{Header: header, Key: key, Width: 10,
			Text: func(b []byte, e *Event) []byte {
				if !e.Figures {
					return append(b, '-')
				}
				return output.AppendUint(b, get(e)>>10)
			},
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, get(e)) },
			Omit: func(e *Event) bool { return !e.Figures }}
	}
	noFigures := func(e *Event) bool { return !e.Figures }
	return append(fs,
		output.Field[Event]{Key: "time",
			JSON: func(b []byte, e *Event) []byte { return output.AppendJSONTime(b, e.Time) }},
		num("PID", "pid", 7, func(e *Event) uint32 { return e.PID }),
		num("", "tgid", 0, func(e *Event) uint32 { return e.TGID }),
		str("COMM", "comm", -16, func(e *Event) []byte { return e.Comm }),
		num("TRIGGER", "trigger_pid", 7, func(e *Event) uint32 { return e.TriggerPID }),
		num("", "trigger_tid", 0, func(e *Event) uint32 { return e.TriggerTID }),
		str("TCOMM", "trigger_comm", -16, func(e *Event) []byte { return e.TriggerComm }),
		figure("VM-KB", "total_vm_bytes", func(e *Event) uint64 { return e.TotalVM }),
		figure("ANON-KB", "anon_rss_bytes", func(e *Event) uint64 { return e.AnonRSS }),
		figure("FILE-KB", "file_rss_bytes", func(e *Event) uint64 { return e.FileRSS }),
		figure("SHMEM-KB", "shmem_rss_bytes", func(e *Event) uint64 { return e.ShmemRSS }),
		figure("", "pgtables_bytes", func(e *Event) uint64 { return e.PgTables }),
		output.Field[Event]{Key: "uid", Omit: noFigures,
			JSON: func(b []byte, e *Event) []byte { return output.AppendUint(b, e.UID) }},
		output.Field[Event]{Key: "oom_score_adj", Omit: noFigures,
			JSON: func(b []byte, e *Event) []byte { return output.AppendInt(b, e.OOMScoreAdj) }},
		str("", "victim_cgroup", 0, func(e *Event) []byte { return []byte(e.VictimCgroup) }),
		str("CGROUP", "cgroup", 0, func(e *Event) []byte { return []byte(e.Cgroup) }),
	)
}
