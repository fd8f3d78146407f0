#!/usr/bin/env bash
# Cost of filetop per read: N 4 KiB preads from a cached file with no
# tracer, with `bpfkit filetop` (JSON to a file, every second) and with
# bench/filetop/filetop.bt, bpftrace doing the same aggregation on the same
# tracepoints. Reports the loop's CPU ns per pread (the BPF programs run in
# its syscalls, so they count; waiting for a CPU does not), the ns added,
# and how many of the loop's preads each tracer counted (it must be all of
# them). Rounds alternate the tracers; compare the medians.
#
# Usage (root): bench/filetop/run.sh [N] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
ROUNDS=${2:-5}
BPFKIT=${BPFKIT:-bin/bpfkit}
work=$(mktemp -d /tmp/bpfkit-bench-filetop.XXXXXX)
tracer=""
cleanup() {
	if [ -n "$tracer" ]; then kill -INT "$tracer" 2>/dev/null || true; wait "$tracer" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
target="$work/target-file"
head -c $((1 << 20)) /dev/urandom >"$target"
ino=$(stat -c %i "$target")
cc -O2 -o "$work/preadloop" bench/filetop/preadloop.c
[ -x "$BPFKIT" ] || go build -o "$BPFKIT" ./cmd/bpfkit

row() { printf '%-22s %12s %10s %10s\n' "$@"; }

# start NAME CMD...: starts a tracer in the background with output in
# $work/NAME.out and waits until it is attached.
start() {
	local name=$1; shift
	"$@" >"$work/$name.out" 2>"$work/$name.err" &
	tracer=$!
	for _ in $(seq 1 1200); do
		case $name in
		bpfkit) grep -q '^Tracing' "$work/$name.err" && return 0 ;;
		bpftrace) grep -q '^--- interval' "$work/$name.out" && return 0 ;;
		esac
		kill -0 "$tracer" 2>/dev/null || { cat "$work/$name.err" >&2; exit 1; }
		sleep 0.1
	done
	echo "$name did not attach within 2 minutes" >&2
	exit 1
}

stop() {
	sleep 1.2 # one more interval, so the last preads are printed
	kill -INT "$tracer"
	wait "$tracer" || echo "tracer failed: $(grep -v -e '^Tracing' -e RLIMIT "$work"/*.err)" >&2
	tracer=""
}

echo "pread 4 KiB x $N, $(nproc) CPUs, kernel $(uname -r), $(date -u +%FT%TZ)"
row "tracer" "cpu ns/pread" "added ns" "counted"
declare -A all
for r in $(seq 1 "$ROUNDS"); do
	base=$("$work/preadloop" "$N" "$target")
	all[none]+="$base "
	row "none" "$base" 0 -

	start bpfkit "$BPFKIT" filetop -o json 1
	ns=$("$work/preadloop" "$N" "$target")
	stop
	counted=$(grep -F "\"comm\":\"preadloop\"" "$work/bpfkit.out" | grep -F "\"path\":\"$target\"" |
		grep -oE '"reads":[0-9]+' | cut -d: -f2 | paste -sd+ | bc)
	all[bpfkit]+="$(echo "$ns - $base" | bc) "
	row "bpfkit filetop" "$ns" "$(echo "$ns - $base" | bc)" "$((counted - 256))"

	start bpftrace bpftrace bench/filetop/filetop.bt
	ns=$("$work/preadloop" "$N" "$target")
	stop
	counted=$(grep -E "^@reads\[[0-9]+, [0-9]+, [0-9]+, $ino\]" "$work/bpftrace.out" |
		grep -oE '[0-9]+$' | paste -sd+ | bc)
	all[bpftrace]+="$(echo "$ns - $base" | bc) "
	row "bpftrace filetop.bt" "$ns" "$(echo "$ns - $base" | bc)" "$((counted - 256))"
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median over $ROUNDS rounds: none $(echo "${all[none]}" | median) ns/pread;" \
	"added: bpfkit filetop $(echo "${all[bpfkit]}" | median) ns, bpftrace $(echo "${all[bpftrace]}" | median) ns"
echo "counted: the loop's timed preads the tracer reported for the file (the 256 warm-up preads subtracted)"
