#!/usr/bin/env bash
# Cost of `bpfkit softirqs` against libbpf-tools' softirqs (issue 13): N UDP
# datagrams to a closed port on the loopback of a throwaway network
# namespace (unshare -n; each is received, and dropped, in a NET_RX softirq
# of the sender), without a tracer, with `bpfkit softirqs` and libbpf-tools'
# `softirqs` (plain totals), and with both with -d (histograms), the
# tracers alternating in each round. Per run: ns per datagram (noisy on a
# shared machine) and the tracer's BPF ns per softirq: the run time of all
# its programs (the kernel's own statistics, bench/execsnoop/progstats)
# over the runs of its program at irq:softirq_exit (one per softirq handled;
# the tracers see every softirq of the machine, not only the flood's). That
# figure is the one compared: bpfkit/libbpf-tools per round, medians and
# minimums at the end. It is far less noisy than the loop time, but on a
# shared VM it still takes in the vCPU's stalls (runs of one tracer vary
# by tens of percent): the minimum is the closest to the programs' own cost.
#
# PAIRED=1: both tools attached at once instead, on the same softirqs of the
# same flood (the order in which they attach, which is the order in which
# their programs run, swapped from round to round): the machine's stalls
# fall on both alike, and the BPF ns per softirq of the two compare
# directly (the loop's ns per datagram is then of both together). The
# program attached first runs first and costs more: the summary gives the
# ratio for each order and their geometric mean, in which that cancels.
#
# Usage (root; apt install libbpf-tools): [PAIRED=1] bench/net/softirqs.sh [N] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
ROUNDS=${2:-3}
BPFKIT=${BPFKIT:-bin/bpfkit}
LIBBPF_SOFTIRQS=${LIBBPF_SOFTIRQS:-/usr/sbin/softirqs}
[ -x "$LIBBPF_SOFTIRQS" ] || { echo "bench/net/softirqs.sh needs libbpf-tools (apt install libbpf-tools)" >&2; exit 1; }
work=$(mktemp -d /tmp/bpfkit-bench-softirqs.XXXXXX)
tracer=""
paired=()
cleanup() {
	for p in "$tracer" "${paired[@]}"; do
		if [ -n "$p" ]; then kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
	done
	rm -rf "$work"
}
trap cleanup EXIT
cc -O2 -o "$work/udpflood" bench/net/cflood/udpflood.c
[ -x "$BPFKIT" ] || go build -o "$BPFKIT" ./cmd/bpfkit
go build -o "$work/progstats" ./bench/execsnoop/progstats

# flood [PID]: N datagrams in a new network namespace (gone when its only
# process exits); prints ns per datagram and, with the PID of a tracer,
# its BPF ns per softirq_exit run and its softirq_exit runs.
flood() {
	local pre=()
	[ -z "${1:-}" ] || pre=("$work/progstats" -hook '^softirq_exit' "$1" "$N")
	# shellcheck disable=SC2016 # $0 and $1 are the inner shell's
	"${pre[@]}" unshare -n sh -c 'ip link set lo up && "$0" "$1"' "$work/udpflood" "$N" 2>"$work/progstats.err" | tr '\n' ' '
	if [ -n "${1:-}" ]; then
		# progstats: <ns per datagram> <runs> <BPF ns> <softirq_exit runs>
		awk 'NF == 4 && $4 > 0 {printf "%.1f %d\n", $3 / $4, $4; ok = 1} END {if (!ok) print "- -"}' "$work/progstats.err"
	else
		echo "- -"
	fi
}

# shellcheck source=bench/tracer.sh
. bench/tracer.sh


median() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "-"}'; }
minimum() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | head -1; }

if [ "${PAIRED:-}" = 1 ]; then
	declare -A pratio
	echo "UDP to a closed port on loopback x $N per run, both tracers at once, $(nproc) CPUs, kernel $(uname -r), $(date -u +%FT%TZ)"
	printf '%-8s %-4s %-22s %12s %14s %14s\n' round opts "attached first" ns/datagram bpfkit-ns/sirq libbpf-ns/sirq
	for r in $(seq 1 "$ROUNDS"); do
		for opt in "" -d; do
			b=("$BPFKIT" softirqs $opt)
			l=(stdbuf -oL "$LIBBPF_SOFTIRQS" $opt)
			if [ $((r % 2)) -eq 1 ]; then first=bpfkit; start bpfkit "${b[@]}"; paired=("$tracer"); start libbpf "${l[@]}"; paired+=("$tracer")
			else first=libbpf-tools; start libbpf "${l[@]}"; paired=("$tracer"); start bpfkit "${b[@]}"; paired+=("$tracer"); fi
			tracer=""
			[ $first = bpfkit ] && pids="${paired[0]},${paired[1]}" || pids="${paired[1]},${paired[0]}"
			# shellcheck disable=SC2016 # $0 and $1 are the inner shell's
			v=$("$work/progstats" -hook '^softirq_exit' "$pids" "$N" unshare -n sh -c 'ip link set lo up && "$0" "$1"' "$work/udpflood" "$N" 2>"$work/progstats.err" | tr -d '\n')
			for p in "${paired[@]}"; do kill -INT "$p"; wait "$p" || true; done
			paired=()
			# progstats: one line per tracer, bpfkit's first
			read -r bns lns <<<"$(awk 'NF == 4 && $4 > 0 {printf "%.1f ", $3 / $4}' "$work/progstats.err")"
			printf '%-8s %-4s %-22s %12s %14s %14s\n' "$r" "${opt:--}" "$first" "$v" "${bns:--}" "${lns:--}"
			if [[ ${bns:-} =~ ^[0-9.]+$ && ${lns:-} =~ ^[0-9.]+$ ]]; then
				pratio[${opt:-plain} $first]+="$(awk -v b="$bns" -v l="$lns" 'BEGIN {printf "%.3f", b / l}') "
			fi
		done
	done
	# The program that runs first costs more: the ratio with bpfkit first
	# is b*p/l, with libbpf-tools first b/(l*p); the geometric mean of the
	# two orders' medians is b/l, the position's factor p cancelled.
	for opt in "" -d; do
		qb=${pratio[${opt:-plain} bpfkit]:-}
		ql=${pratio[${opt:-plain} libbpf-tools]:-}
		mb=$(echo "$qb" | median)
		ml=$(echo "$ql" | median)
		echo "bpfkit/libbpf-tools BPF ns per softirq${opt:+ ($opt)}: bpfkit attached first $qb(median $mb), libbpf-tools first $ql(median $ml); both orders: $(awk -v a="$mb" -v b="$ml" 'BEGIN {printf "%.3f", sqrt(a * b)}')"
	done
	exit 0
fi

declare -A nspkt bpf ratio
names=(none "bpfkit softirqs" "libbpf-tools softirqs" "bpfkit softirqs -d" "libbpf-tools softirqs -d")
row() { printf '%-26s %10s %14s %14s %16s\n' "$@"; }
echo "UDP to a closed port on loopback x $N per run, $(nproc) CPUs, kernel $(uname -r), $(date -u +%FT%TZ)"
echo "bpf-ns/softirq: all the tracer's BPF run time / runs of its program at irq:softirq_exit"
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r"
	row tracer ns/datagram bpf-ns/softirq softirq_exits "bpfkit/libbpf"
	# Alternate the order of the two tools from round to round.
	order=("${names[@]}")
	[ $((r % 2)) -eq 1 ] || order=(none "libbpf-tools softirqs" "bpfkit softirqs" "libbpf-tools softirqs -d" "bpfkit softirqs -d")
	for name in "${order[@]}"; do
		case $name in
		none) cmd=() ;;
		"bpfkit softirqs") cmd=("$BPFKIT" softirqs) ;;
		"bpfkit softirqs -d") cmd=("$BPFKIT" softirqs -d) ;;
		"libbpf-tools softirqs") cmd=(stdbuf -oL "$LIBBPF_SOFTIRQS") ;; # its "Tracing" line
		"libbpf-tools softirqs -d") cmd=(stdbuf -oL "$LIBBPF_SOFTIRQS" -d) ;;
		esac
		if [ ${#cmd[@]} -eq 0 ]; then
			read -r v b runs <<<"$(flood)"
		elif start "$name" "${cmd[@]}"; then
			read -r v b runs <<<"$(flood "$tracer")"
			stop_tracer
		else
			row "$name" - - - "does not start: $(grep -m1 -i -e fail -e error "$work/$name.err" | cut -c1-40)"
			continue
		fi
		nspkt[$name]+="$v "
		bpf[$name]+="$b "
		row "$name" "$v" "$b" "$runs" ""
	done
	for mode in "" " -d"; do
		b=$(echo "${bpf[bpfkit softirqs$mode]:-}" | awk '{print $NF}')
		l=$(echo "${bpf[libbpf-tools softirqs$mode]:-}" | awk '{print $NF}')
		if [[ $b =~ ^[0-9.]+$ && $l =~ ^[0-9.]+$ ]]; then
			q=$(awk -v b="$b" -v l="$l" 'BEGIN {printf "%.2f", b / l}')
			ratio[softirqs$mode]+="$q "
			row "ratio softirqs$mode" "" "" "" "$q"
		fi
	done
done
echo "median over $ROUNDS rounds (ns per datagram, BPF ns per softirq, its minimum, median of the rounds' bpfkit/libbpf-tools):"
row tracer ns/datagram bpf-ns/softirq "min bpf-ns" "bpfkit/libbpf"
for name in "${names[@]}"; do
	[ -n "${nspkt[$name]:-}" ] || continue
	q=""
	case $name in
	bpfkit*) q=$(echo "${ratio[${name#bpfkit }]:-}" | median) ;;
	esac
	row "$name" "$(echo "${nspkt[$name]}" | median)" "$(echo "${bpf[$name]}" | median)" "$(echo "${bpf[$name]}" | minimum)" "$q"
done
