#!/usr/bin/env bash
# Cost of tracing opens, side by side in one run: N openat+close with no
# tracer, with bpfkit opensnoop (table/JSON, to /dev/null and to a file),
# bpftrace's opensnoop.bt and libbpf-tools' opensnoop. Reports added ns per
# open, events captured and lost, tracer CPU seconds and peak RSS, and the
# time from starting a tracer to its first event.
#
# Usage (root): bench/opensnoop/run.sh [N] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
ROUNDS=${2:-3}
BPFKIT=${BPFKIT:-bin/bpfkit}
work=$(mktemp -d /tmp/bpfkit-bench.XXXXXX)
trap 'pkill -INT -f "$work" 2>/dev/null || true; rm -rf "$work"' EXIT
target="$work/target-file"
: >"$target"
cc -O2 -o "$work/openloop" bench/opensnoop/openloop.c
[ -x "$BPFKIT" ] || go build -o "$BPFKIT" ./cmd/bpfkit

declare -A base
row() { printf '%-28s %10s %10s %12s %8s %9s %9s %10s\n' "$@"; }

# run_tracer NAME OUTFILE CMD...: starts CMD under /usr/bin/time, waits until
# it shows an open of a marker file, runs the loop, stops it, prints a row.
measure_base() {
	local ns
	ns=$("$work/openloop" "$N" "$target")
	echo "$ns"
}

run_tracer() {
	local name=$1 out=$2; shift 2
	local marker="$work/marker-$RANDOM" stats="$work/time.$RANDOM"
	: >"$marker"
	local t0 t1 first
	t0=$(date +%s%N)
	/usr/bin/time -f '%U %S %M' -o "$stats" "$@" >"$out" 2>"$work/stderr" &
	local tpid=$!
	if [ "$out" = /dev/null ]; then
		sleep 2 # no output to watch: give it ample time to attach
		first="-"
	else
		# Wait for the tracer to show an open of the marker (it is attached).
		for _ in $(seq 1 3000); do
			cat "$marker" >/dev/null
			grep -q "marker" "$out" 2>/dev/null && break
			sleep 0.002
		done
		t1=$(date +%s%N)
		first="$(((t1 - t0) / 1000000))ms"
	fi
	local ns
	ns=$("$work/openloop" "$N" "$target")
	sleep 0.5
	local pid
	pid=$(pgrep -P "$tpid" | head -1)
	kill -INT "$pid" 2>/dev/null || true
	wait "$tpid" || true
	local cpu rss captured lost u s
	read -r u s rss <"$stats" || true
	cpu=$(echo "$u + $s" | bc)
	if [ "$out" = /dev/null ]; then
		# bpfkit's own summary: all events it saw (output discarded), lost.
		captured="$(grep -oE '^bpfkit: [0-9]+ events' "$work/stderr" | grep -oE '[0-9]+' || echo '?')*"
		lost=$(grep -oE '[0-9]+ lost' "$work/stderr" | grep -oE '[0-9]+' || echo '?')
	else
		captured=$(grep -c "target-file" "$out" || true)
		lost=$((N - captured))
	fi
	local added
	added=$(echo "$ns - ${base[ns]}" | bc)
	row "$name" "$ns" "$added" "$captured" "$lost" "$cpu" "$((rss / 1024))MB" "$first"
}

echo "openat+close x $N, $(nproc) CPUs, kernel $(uname -r), $(date -u +%FT%TZ)"
for r in $(seq 1 "$ROUNDS"); do
	echo "--- round $r"
	row "tracer" "ns/open" "added ns" "captured" "lost" "cpu s" "max RSS" "attach"
	base[ns]=$(measure_base)
	row "none" "${base[ns]}" 0 - - - - -
	run_tracer "bpfkit table >/dev/null" /dev/null "$BPFKIT" opensnoop
	run_tracer "bpfkit table >file" "$work/bk-table.txt" "$BPFKIT" opensnoop
	run_tracer "bpfkit json >/dev/null" /dev/null "$BPFKIT" opensnoop -o json
	run_tracer "bpfkit json >file" "$work/bk-json.txt" "$BPFKIT" opensnoop -o json
	if [ -x /usr/sbin/opensnoop ]; then
		run_tracer "libbpf-tools opensnoop" "$work/libbpf.txt" /usr/sbin/opensnoop
	fi
	if [ -x /usr/sbin/opensnoop.bt ]; then
		run_tracer "bpftrace opensnoop.bt" "$work/bpftrace.txt" bpftrace /usr/sbin/opensnoop.bt
	fi
done
echo "captured: events in the output for the loop's file (* = all events bpfkit counted, output discarded)"
echo "attach: from starting the tracer until an open shows in its output"
echo "lost: opens of the loop's file missing from the output (* rows: the tracer's own lost counter)"
