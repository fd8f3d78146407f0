#!/usr/bin/env bash
# Cost of the scheduler tracers per context switch: a pipe ping-pong
# (`perf bench sched pipe`, N round trips, both tasks pinned to one CPU so
# that every round trip is two context switches) with no tracer, with each
# bpfkit scheduler tool, with bpftrace's runqlat.bt and with a bpftrace
# script counting sched_switch per pid (the same job as cswitch). Each
# tracer's run is paired with a no-tracer run just before it, as the load of
# a shared machine drifts.
#
# Columns: µs per round trip without and with the tracer (the minimum of
# ROUNDS runs each, alternating: a shared machine's load makes single runs
# useless) and the added ns per switch that follows ((on - off) × round
# trips / switches, switches from /proc/stat ctxt, the whole machine's,
# which the tracer also pays for); then, measured by the kernel itself
# (kernel.bpf_stats_enabled, on during the run only), the tracer's BPF
# programs' run time per sched_switch (all its programs, wakeup ones too,
# divided by the runs of its sched_switch program): the cost the tracer
# adds to every switch, free of the machine's noise but without the
# tracepoint's own dispatch (~10-20 ns, the same for every tracer).
#
# bpftrace 0.17's runqlat.bt does not compile against Debian's
# <linux/sched.h>; the copy run here has the #include replaced by
# TASK_RUNNING = 0, nothing else changed.
#
# Usage (root): bench/sched/run.sh [N] [CPU] [ROUNDS]
#   ONLY=REGEX bench/sched/run.sh ... runs the tracers whose name matches.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
CPU=${2:-1}
ROUNDS=${3:-3}
BPFKIT=${BPFKIT:-bin/bpfkit}
work=$(mktemp -d /tmp/bpfkit-schedbench.XXXXXX)
tracer_pid=
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
	sysctl -qw kernel.bpf_stats_enabled="$stats_was"
	if [ -n "$tracer_pid" ]; then kill -TERM "$tracer_pid" 2>/dev/null || true; wait "$tracer_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
[ -x "$BPFKIT" ] || go build -o "$BPFKIT" ./cmd/bpfkit
sed -e 's|^#include <linux/sched.h>||' -e 's|TASK_RUNNING|0|' /usr/sbin/runqlat.bt >"$work/runqlat.bt"

ctxt() { awk '/^ctxt/ {print $2}' /proc/stat; }
# pingpong prints µs per round trip and the machine's switches meanwhile.
pingpong() {
	local c0 c1 us
	c0=$(ctxt)
	us=$(taskset -c "$CPU" perf bench sched pipe -l "$N" 2>/dev/null | awk '/usecs\/op/ {print $1}')
	c1=$(ctxt)
	echo "$us $((c1 - c0))"
}

# progs PID: ids of the BPF programs process PID holds.
progs() { grep -h '^prog_id:' /proc/"$1"/fdinfo/* 2>/dev/null | awk '{print $2}' | sort -u; }
# progstats IDS...: "run_time_ns run_cnt_of_switch_progs" summed.
progstats() {
	local id t=0 c=0 j
	for id in "$@"; do
		j=$(bpftool prog show id "$id" -j)
		t=$((t + $(jq '.run_time_ns // 0' <<<"$j")))
		if jq -e '.name | test("switch")' <<<"$j" >/dev/null; then
			c=$((c + $(jq '.run_cnt // 0' <<<"$j")))
		fi
	done
	echo "$t $c"
}
min() { printf '%s\n' "$@" | sort -g | head -1; }

printf '%-34s %9s %9s %9s | %12s %11s\n' tracer "us/rt-off" "us/rt-on" "ns/sw+" "switches" "bpf-ns/sw"
run() {
	local name=$1; shift
	if [ -n "${ONLY:-}" ] && ! [[ $name =~ $ONLY ]]; then return; fi
	local offs=() ons=() sws=0 us sw ids=() t0 c0 t1 c1 bpf=-
	for _ in $(seq "$ROUNDS"); do
		read -r us _ < <(pingpong)
		offs+=("$us")
	done
	if [ "$1" != none ]; then
		"$@" >"$work/out" 2>"$work/err" &
		tracer_pid=$!
		sleep 3 # loaded and attached
		if ! kill -0 "$tracer_pid" 2>/dev/null; then
			echo "$name: did not start:"; cat "$work/err"; tracer_pid=; return
		fi
		mapfile -t ids < <(progs "$tracer_pid")
	fi
	read -r t0 c0 < <(progstats "${ids[@]}")
	for _ in $(seq "$ROUNDS"); do
		read -r us sw < <(pingpong)
		ons+=("$us")
		sws=$((sws + sw))
	done
	read -r t1 c1 < <(progstats "${ids[@]}")
	if [ -n "$tracer_pid" ]; then
		kill -TERM "$tracer_pid" 2>/dev/null || true
		wait "$tracer_pid" 2>/dev/null || true
		tracer_pid=
	fi
	local off on
	off=$(min "${offs[@]}")
	on=$(min "${ons[@]}")
	[ "$c1" -gt "$c0" ] && bpf=$(( (t1 - t0) / (c1 - c0) ))
	printf '%-34s %9.2f %9.2f %9.0f | %12d %11s\n' "$name" "$off" "$on" \
		"$(echo "($on - $off) * 1000 * $N * $ROUNDS / $sws" | bc -l)" "$((sws / ROUNDS))" "$bpf"
}

sysctl -qw kernel.bpf_stats_enabled=1
run "none (noise floor)" none
run "bpfkit cswitch" "$BPFKIT" cswitch 1
run "bpfkit runqlat" "$BPFKIT" runqlat
run "bpfkit offcputime" "$BPFKIT" offcputime
run "bpfkit sched record (/dev/null)" "$BPFKIT" sched record -o /dev/null --max-events 0
run "bpftrace runqlat.bt" bpftrace "$work/runqlat.bt"
run "bpftrace sched_switch count" bpftrace -e 'tracepoint:sched:sched_switch { @[args->prev_pid] = count(); }'
