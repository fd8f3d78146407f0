#!/usr/bin/env bash
# Cost of tracing execs, side by side: N fork+exec+wait of /bin/true (each
# with a unique argument) with no tracer, with bpfkit execsnoop (JSON to a
# file), bpftrace's execsnoop.bt and libbpf-tools' execsnoop (bcc's Python
# execsnoop too where it is installed). Each tracer's run is paired with a
# no-tracer run just before it, as the machine's load drifts.
#
# Columns: wall µs per exec without and with the tracer, and the difference;
# CPU µs per exec (user+system of the loop and its children, which includes
# the BPF programs in the exec path) without and with, and the difference in
# percent; the time the tracer's BPF programs ran per exec, from the
# kernel's run-time statistics (progstats/, exact where the others drift
# with the machine's load; it counts every exec on the machine meanwhile);
# the tracer's own CPU per traced exec (all of its run, start-up and idle
# included, over the N traced execs: an upper bound); execs captured with
# their exact unique argument; the tracer's peak RSS.
#
# Usage (root): bench/execsnoop/run.sh [N] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-5000}
ROUNDS=${2:-3}
BPFKIT=${BPFKIT:-bin/bpfkit}
work=$(mktemp -d /tmp/bpfkit-execbench.XXXXXX)
tracer_pid=
cleanup() {
	if [ -n "$tracer_pid" ]; then kill -INT "$tracer_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
cc -O2 -o "$work/execloop" bench/execsnoop/execloop.c
go build -o "$work/progstats" ./bench/execsnoop/progstats
[ -x "$BPFKIT" ] || go build -o "$BPFKIT" ./cmd/bpfkit

row() { printf '%-24s %8s %8s %8s | %7s %7s %7s | %7s %9s %10s %8s\n' "$@"; }
us() { echo "scale=1; $1 / 1000" | bc; }

# run_tracer NAME CMD...: starts CMD under /usr/bin/time writing to a file,
# waits until it shows an exec of a marker (it is attached), runs the loop
# with no tracer and then with it, stops it, prints a row.
run_tracer() {
	local name=$1; shift
	local out="$work/out" stats="$work/time" tag="$RANDOM$RANDOM"
	local marker="marker-$tag"
	/usr/bin/time -f '%U %S %M' -o "$stats" "$@" >"$out" 2>"$work/stderr" &
	local tpid=$!
	for _ in $(seq 1 1500); do
		/bin/true "$marker"
		grep -q "$marker" "$out" 2>/dev/null && break
		sleep 0.01
	done
	tracer_pid=$(pgrep -P "$tpid" | head -1 || true)
	if ! grep -q "$marker" "$out"; then
		echo "$name: never attached:"
		cat "$work/stderr"
		[ -n "$tracer_pid" ] && kill -INT "$tracer_pid" 2>/dev/null
		wait "$tpid" || true
		tracer_pid=
		return
	fi
	local base base_cpu ns ns_cpu
	local out_base out_traced bpf_ns
	out_base=$("$work/execloop" "$N" /bin/true "base$tag")
	out_traced=$("$work/progstats" "$tracer_pid" "$N" "$work/execloop" "$N" /bin/true "$tag" 2>"$work/progstats.out")
	read -r base base_cpu <<<"$out_base"
	read -r ns ns_cpu <<<"$out_traced"
	read -r bpf_ns _ <"$work/progstats.out" || true
	[[ "$bpf_ns" =~ ^[0-9]+$ ]] || { cat "$work/progstats.out" >&2; bpf_ns="?"; }
	sleep 1 # let the tracer drain
	kill -INT "$tracer_pid" 2>/dev/null || true
	wait "$tpid" || true
	tracer_pid=
	local u s rss tracer_cpu captured
	read -r u s rss <"$stats" || true
	# The tracer's CPU over the whole run (start-up, marker, both loops)
	# per traced exec: an upper bound.
	tracer_cpu=$(echo "scale=1; ($u + $s) * 1000000 / $N" | bc)
	# Captured: distinct execs whose unique argument shows whole.
	captured=$(grep -oE "bench-$tag-[0-9]+\b" "$out" | sort -u | wc -l)
	row "$name" "$(us "$base")" "$(us "$ns")" "$(us "$((ns - base))")" \
		"$(us "$base_cpu")" "$(us "$ns_cpu")" "$(echo "scale=1; 100 * ($ns_cpu - $base_cpu) / $base_cpu" | bc)%" \
		"$bpf_ns" "$tracer_cpu" "$captured/$N" "$((rss / 1024))MB"
}

echo "fork+exec+wait of /bin/true x $N, $(nproc) CPUs, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
for r in $(seq 1 "$ROUNDS"); do
	echo "--- round $r"
	row "tracer" "base µs" "µs/exec" "added" "cpu µs" "traced" "added" "bpf ns" "tracer µs" "captured" "max RSS"
	run_tracer "bpfkit execsnoop" "$BPFKIT" execsnoop -o json
	bt=$(ls /usr/sbin/execsnoop.bt /usr/share/bpftrace/tools/execsnoop.bt 2>/dev/null | head -1 || true)
	if [ -n "$bt" ] && command -v bpftrace >/dev/null; then run_tracer "bpftrace execsnoop.bt" bpftrace "$bt"; fi
	if [ -x /usr/sbin/execsnoop ]; then run_tracer "libbpf-tools execsnoop" /usr/sbin/execsnoop; fi
	for bcc in /usr/sbin/execsnoop-bpfcc /usr/share/bcc/tools/execsnoop; do
		if [ -x "$bcc" ]; then run_tracer "bcc execsnoop (python)" "$bcc"; fi
	done
done
