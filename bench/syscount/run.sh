#!/usr/bin/env bash
# Cost per system call traced: getppidloop makes N getppid() calls and
# times its loop, with no tracer, with bpfkit syscount, libbpf-tools'
# syscount and a bpftrace one-liner counting raw_syscalls:sys_exit by
# syscall id. All three trace every process (their default); each is
# attached before the loop starts.
#
# The machine is shared and noisy: each traced run follows its own untraced
# run (A/B pairs), "added" is the difference, "ratio" the added cost over
# bpftrace's in the same round; the summary gives the median and the spread
# (min..max) over the rounds, and the tracer's BPF run time per call from
# the kernel's own statistics (bench/execsnoop/progstats, in a second loop
# of N/4 calls). "counted" is the getppid calls the tracer reported: the
# two loops' N + N/4, plus any other process's.
#
# Usage (root; apt install bpftrace libbpf-tools): bench/syscount/run.sh [N] [ROUNDS]
# BPFKIT (default bin/bpfkit, built if missing) is the bpfkit measured; with
# BPFKIT_BASE set to another build (e.g. of main), that one runs too, as
# "bpfkit base", in the same rounds.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-2000000}
ROUNDS=${2:-5}
BPFKIT=${BPFKIT:-bin/bpfkit}
command -v bpftrace >/dev/null || { echo "bench/syscount needs bpftrace (apt install bpftrace libbpf-tools)" >&2; exit 1; }
work=$(mktemp -d /tmp/bpfkit-bench-syscount.XXXXXX)
tracer=""
cleanup() {
	if [ -n "$tracer" ]; then kill -INT "$tracer" 2>/dev/null || true; wait "$tracer" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
[ -x "$BPFKIT" ] || go build -o "$BPFKIT" ./cmd/bpfkit
cc -O2 -o "$work/getppidloop" bench/syscount/getppidloop.c
go build -o "$work/progstats" ./bench/execsnoop/progstats
getppid=$(printf '#include <sys/syscall.h>\nSYS_getppid\n' | cc -E -P - | tail -1)

# shellcheck source=bench/tracer.sh
. bench/tracer.sh

# run NAME [CMD...]: starts the tracer and waits until it says it is
# attached, runs the loop, stops the tracer. Sets ns (per call), bpfns (the
# tracer's BPF run time per call) and counted; returns 1 if the tracer did
# not start.
run() {
	local name=$1; shift
	counted=-
	bpfns=-
	if [ $# -eq 0 ]; then
		ns=$("$work/getppidloop" "$N")
		return 0
	fi
	start "$name" "$@" || return 1
	ns=$("$work/getppidloop" "$N")
	# The BPF run time in a second, shorter loop: the statistics cost
	# time per program run, so
	# the timed loop runs without them.
	"$work/progstats" "$tracer" $((N / 4)) "$work/getppidloop" $((N / 4)) >/dev/null 2>"$work/progstats.err"
	bpfns=$(cut -d' ' -f1 "$work/progstats.err")
	stop_tracer
	case $name in
	"bpfkit syscount" | "bpfkit base" | "libbpf-tools syscount") counted=$(awk '$1 == "getppid" {print $2}' "$work/$name.out") ;;
	bpftrace) counted=$(grep -oE "^@\[$getppid\]: [0-9]+" "$work/$name.out" | grep -oE '[0-9]+$') ;;
	esac
	return 0
}

names=("bpfkit syscount" "libbpf-tools syscount" bpftrace)
[ -z "${BPFKIT_BASE:-}" ] || names=("bpfkit base" "${names[@]}")
declare -A added ratio bpf
row() { printf '%-24s %9s %9s %11s %7s %s\n' "$@"; }
echo "getppid() x $N, $(nproc) CPUs, kernel $(uname -r), $(date -u +%FT%TZ)"
for r in $(seq 1 "$ROUNDS"); do
	echo "--- round $r"
	row tracer ns/call added-ns bpf-ns/call ratio counted
	declare -A got=() gotns=() gotbpf=() gotcount=() gotsaid=()
	for name in "${names[@]}"; do
		case $name in
		"bpfkit syscount") cmd=("$BPFKIT" syscount -r 1000) ;; # the table: it says "Tracing" once attached
		"bpfkit base") cmd=("$BPFKIT_BASE" syscount -r 1000) ;;
		"libbpf-tools syscount")
			command -v syscount >/dev/null || { gotcount[$name]="not installed (apt install libbpf-tools)"; continue; }
			cmd=(stdbuf -oL syscount -T 1000) ;;
		bpftrace) cmd=(bpftrace -B line -e 'BEGIN { printf("Tracing\n"); } tracepoint:raw_syscalls:sys_exit { @[args->id] = count(); }') ;;
		esac
		run none
		base=$ns
		if ! run "$name" "${cmd[@]}"; then
			gotcount[$name]="does not start: $(tail -1 "$work/$name.err" | cut -c1-100)"
			continue
		fi
		got[$name]=$(echo "$ns - $base" | bc)
		gotns[$name]=$ns
		gotbpf[$name]=$bpfns
		gotcount[$name]="$counted/$((N + N / 4))"
		# What the tracer said besides its banner (bpfkit: losses, skipped runs).
		said=$(grep -vE '^(Tracing|Attaching)' "$work/$name.err" | tail -3 | tr '\n' ' ' || true)
		[ -z "$said" ] || gotsaid[$name]=$said
	done
	for name in "${names[@]}"; do
		if [ -z "${got[$name]:-}" ]; then
			row "$name" - - - - "${gotcount[$name]:-}"
			continue
		fi
		q=-
		[ -z "${got[bpftrace]:-}" ] || q=$(awk -v a="${got[$name]}" -v b="${got[bpftrace]}" 'BEGIN {printf "%.3f", a / b}')
		row "$name" "${gotns[$name]}" "${got[$name]}" "${gotbpf[$name]}" "$q" "${gotcount[$name]}"
		added[$name]+="${got[$name]} "
		ratio[$name]+="$q "
		bpf[$name]+="${gotbpf[$name]} "
	done
	echo "(untraced, the run before bpftrace: $base ns/call)"
	for name in "${names[@]}"; do
		[ -z "${gotsaid[$name]:-}" ] || echo "($name said: ${gotsaid[$name]})"
	done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
spread() { tr ' ' '\n' | grep . | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {print lo ".." hi}'; }
echo "median over $ROUNDS rounds (spread: min..max): added ns per call over the untraced run before it,"
echo "ratio of that to bpftrace's in the same round, the tracer's BPF run time per call"
printf '%-24s %9s %16s %7s %14s %12s %10s\n' tracer added-ns spread ratio spread bpf-ns/call spread
for name in "${names[@]}"; do
	[ -n "${added[$name]:-}" ] || continue
	printf '%-24s %9s %16s %7s %14s %12s %10s\n' "$name" "$(echo "${added[$name]}" | median)" "$(echo "${added[$name]}" | spread)" \
		"$(echo "${ratio[$name]}" | median)" "$(echo "${ratio[$name]}" | spread)" "$(echo "${bpf[$name]}" | median)" "$(echo "${bpf[$name]}" | spread)"
done
