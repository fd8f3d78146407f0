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
# PAIRED=1: the three tracers attached at once instead, on the same N calls
# of one loop, the order in which they attach (the order in which their
# programs run, the first costing more) rotated from round to round: the
# machine's stalls fall on all alike. Per round the BPF ns per call of each;
# the summary compares geometric means over the rounds (ROUNDS a multiple
# of 3 puts each tracer in each place equally often, which cancels the
# places' factors).
#
# Usage (root; apt install bpftrace libbpf-tools): [PAIRED=1] bench/syscount/run.sh [N] [ROUNDS]
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
paired=()
cleanup() {
	for p in "$tracer" "${paired[@]}"; do
		if [ -n "$p" ]; then kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
	done
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
	counted=$(counted_by "$name")
	return 0
}

# tracer_cmd NAME: sets cmd to the command of tracer NAME; returns 1 if it
# is not installed.
tracer_cmd() {
	case $1 in
	"bpfkit syscount") cmd=("$BPFKIT" syscount -r 1000) ;; # the table: it says "Tracing" once attached
	"bpfkit base") cmd=("$BPFKIT_BASE" syscount -r 1000) ;;
	"libbpf-tools syscount")
		command -v syscount >/dev/null || return 1
		cmd=(stdbuf -oL syscount -T 1000) ;;
	bpftrace) cmd=(bpftrace -B line -e 'BEGIN { printf("Tracing\n"); } tracepoint:raw_syscalls:sys_exit { @[args->id] = count(); }') ;;
	esac
}

# counted_by NAME: the getppid calls tracer NAME reported.
counted_by() {
	case $1 in
	"bpfkit syscount" | "bpfkit base" | "libbpf-tools syscount") awk '$1 == "getppid" {print $2}' "$work/$1.out" ;;
	bpftrace) grep -oE "^@\[$getppid\]: [0-9]+" "$work/$1.out" | grep -oE '[0-9]+$' ;;
	esac
}

if [ "${PAIRED:-}" = 1 ]; then
	names=("bpfkit syscount" "libbpf-tools syscount" bpftrace)
	declare -A logs
	echo "getppid() x $N, the three tracers at once, $(nproc) CPUs, kernel $(uname -r), $(date -u +%FT%TZ)"
	printf '%-6s %-22s %10s %14s %14s %14s %s\n' round "attached first" ns/call bpfkit-bpf-ns libbpf-bpf-ns bpftrace-bpf-ns "counted (each)"
	for r in $(seq 1 "$ROUNDS"); do
		k=$(((r - 1) % 3))
		order=("${names[@]:k}" "${names[@]:0:k}")
		declare -A pid=()
		for name in "${order[@]}"; do
			tracer_cmd "$name" || { echo "$name is not installed (apt install bpftrace libbpf-tools)" >&2; exit 1; }
			start "$name" "${cmd[@]}" || { echo "$name does not start: $(tail -1 "$work/$name.err")" >&2; exit 1; }
			pid[$name]=$tracer
			paired+=("$tracer")
			tracer=""
		done
		ns=$("$work/progstats" "${pid[bpfkit syscount]},${pid[libbpf-tools syscount]},${pid[bpftrace]}" "$N" "$work/getppidloop" "$N" 2>"$work/progstats.err")
		for p in "${paired[@]}"; do kill -INT "$p"; wait "$p" || true; done
		paired=()
		read -r b l t <<<"$(cut -d' ' -f1 "$work/progstats.err" | tr '\n' ' ')"
		counts=""
		for name in "${names[@]}"; do counts+="$(counted_by "$name") "; done
		printf '%-6s %-22s %10s %14s %14s %14s %s\n' "$r" "${order[0]}" "$ns" "$b" "$l" "$t" "$counts"
		logs[b]+="$b "
		logs[l]+="$l "
		logs[t]+="$t "
	done
	gmean() { tr ' ' '\n' | grep . | awk '{s += log($1); n++} END {printf "%.1f", exp(s / n)}'; }
	gb=$(echo "${logs[b]}" | gmean)
	gl=$(echo "${logs[l]}" | gmean)
	gt=$(echo "${logs[t]}" | gmean)
	echo "geometric means of BPF ns per call over $ROUNDS rounds: bpfkit $gb, libbpf-tools $gl, bpftrace $gt;" \
		"bpfkit/libbpf-tools $(awk -v a="$gb" -v b="$gl" 'BEGIN {printf "%.3f", a / b}'), bpfkit/bpftrace $(awk -v a="$gb" -v b="$gt" 'BEGIN {printf "%.3f", a / b}')"
	exit 0
fi

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
		tracer_cmd "$name" || { gotcount[$name]="not installed (apt install libbpf-tools)"; continue; }
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
