#!/usr/bin/env bash
# Cost of the block I/O tracers: fio doing N 4 KiB random direct reads (one
# job, psync) on a loop device over a file in tmpfs, without a tracer, with bpfkit biolatency, biosnoop (JSON to a file) and
# biotop (JSON every second to a file), and with libbpf-tools' biolatency
# and biosnoop where they start on this kernel (biosnoop 0.26 needs kprobes).
# Every tracer traces the loop device only (-d). Rounds alternate the
# tracers; the report gives each round's IOPS and the median ratio to the
# untraced runs of the same rounds (noisy on a shared machine), and the
# tracer's BPF run time per read from the kernel's own statistics
# (bench/execsnoop/progstats: exact, free of the machine's noise).
# "counted" is how many of fio's reads biosnoop printed or biotop counted
# (it must be all of them).
#
# PAIRED=1: bpfkit biolatency and libbpf-tools' biolatency attached at once
# instead, on the same reads of one fio run (the one attached first, whose
# programs run first, swapped from round to round): the machine's stalls
# fall on both alike, and their BPF ns per read compare directly. The
# program attached first costs more: the summary gives the ratio for each
# order and their geometric mean, in which that cancels.
#
# Usage (root; apt install fio libbpf-tools): [PAIRED=1] bench/bio/run.sh [N] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-100000}
ROUNDS=${2:-3}
BPFKIT=${BPFKIT:-bin/bpfkit}
command -v fio >/dev/null || { echo "bench/bio needs fio (apt install fio libbpf-tools)" >&2; exit 1; }
work=$(mktemp -d /dev/shm/bpfkit-bench-bio.XXXXXX)
tracer=""
loop=""
paired=()
cleanup() {
	for p in "$tracer" "${paired[@]}"; do
		if [ -n "$p" ]; then kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
	done
	if [ -n "$loop" ]; then losetup -d "$loop" || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
[ -x "$BPFKIT" ] || go build -o "$BPFKIT" ./cmd/bpfkit
go build -o "$work/progstats" ./bench/execsnoop/progstats
truncate -s 1G "$work/disk.img"
loop=$(losetup -f --show "$work/disk.img")
disk=${loop#/dev/}
dd if=/dev/zero of="$loop" bs=1M count=1024 oflag=direct status=none # allocate the tmpfs pages

# fio_run [PID]: prints read IOPS, the number of reads (fio's terse output:
# field 6 is KiB read, 8 the IOPS) and the BPF ns per read of tracer PID.
fio_run() {
	local pre=()
	[ -z "${1:-}" ] || pre=("$work/progstats" "$1" "$N")
	"${pre[@]}" fio --name=randread --filename="$loop" --rw=randread --bs=4k --direct=1 --ioengine=psync \
		--numjobs=1 --number_ios="$N" --output-format=terse --terse-version=3 2>"$work/progstats.err" |
		awk -F';' '{printf "%d %d ", $8, $6 / 4}'
	if [ -n "${1:-}" ]; then cut -d' ' -f1 "$work/progstats.err"; else echo -; fi
}

# shellcheck source=bench/tracer.sh
. bench/tracer.sh

stop() {
	sleep 1.2 # one more interval for biotop
	stop_tracer
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# hist_total FILE: the reads a biolatency histogram counted.
hist_total() { grep -E '^ +[0-9]+ -> ' "$1" | awk '{s += $5} END {print s + 0}'; }

if [ "${PAIRED:-}" = 1 ]; then
	echo "fio 4 KiB randread direct psync 1 job on $disk (tmpfs), $N reads per run, both biolatency at once, $(nproc) CPUs, kernel $(uname -r), $(date -u +%FT%TZ)"
	printf '%-6s %-14s %8s %16s %16s %14s\n' round "attached first" IOPS bpfkit-ns/read libbpf-ns/read "counted b/l"
	qb=""
	ql=""
	for r in $(seq 1 "$ROUNDS"); do
		b=("$BPFKIT" biolatency -d "$disk")
		l=(stdbuf -oL biolatency -d "$disk")
		if [ $((r % 2)) -eq 1 ]; then first=bpfkit; start bpfkit "${b[@]}"; paired=("$tracer"); start libbpf "${l[@]}"; paired+=("$tracer")
		else first=libbpf-tools; start libbpf "${l[@]}"; paired=("$tracer"); start bpfkit "${b[@]}"; paired+=("$tracer"); fi
		tracer=""
		[ $first = bpfkit ] && pids="${paired[0]},${paired[1]}" || pids="${paired[1]},${paired[0]}"
		read -r v n _ <<<"$("$work/progstats" "$pids" "$N" fio --name=randread --filename="$loop" --rw=randread --bs=4k --direct=1 --ioengine=psync \
			--numjobs=1 --number_ios="$N" --output-format=terse --terse-version=3 2>"$work/progstats.err" | awk -F';' '{printf "%d %d", $8, $6 / 4}')"
		sleep 1.2
		for p in "${paired[@]}"; do kill -INT "$p"; wait "$p" || true; done
		paired=()
		# progstats: one line per tracer, bpfkit's first; field 1 is ns per read
		read -r bns lns <<<"$(cut -d' ' -f1 "$work/progstats.err" | tr '\n' ' ')"
		printf '%-6s %-14s %8s %16s %16s %14s\n' "$r" "$first" "$v" "$bns" "$lns" "$(hist_total "$work/bpfkit.out")/$(hist_total "$work/libbpf.out") of $n"
		q=$(awk -v b="$bns" -v l="$lns" 'BEGIN {printf "%.3f", b / l}')
		if [ $first = bpfkit ]; then qb+="$q "; else ql+="$q "; fi
	done
	# The program that runs first costs more: the ratio with bpfkit first
	# is b*p/l, with libbpf-tools first b/(l*p); the geometric mean of the
	# two orders' medians is b/l, the position's factor p cancelled.
	mb=$(echo "$qb" | median)
	ml=$(echo "$ql" | median)
	echo "bpfkit/libbpf-tools BPF ns per read: bpfkit attached first $qb(median $mb), libbpf-tools first $ql(median $ml); both orders: $(awk -v a="$mb" -v b="$ml" 'BEGIN {printf "%.3f", sqrt(a * b)}')"
	exit 0
fi

declare -A iops ratio bpf
names=(none "bpfkit biolatency" "bpfkit biosnoop" "bpfkit biotop" "libbpf-tools biolatency" "libbpf-tools biosnoop")
row() { printf '%-24s %8s %7s %8s %12s\n' "$@"; }
echo "fio 4 KiB randread direct psync 1 job on $disk (tmpfs), $N reads per run, $(nproc) CPUs, kernel $(uname -r), $(date -u +%FT%TZ)"
for r in $(seq 1 "$ROUNDS"); do
	echo "round $r"
	row tracer IOPS ratio bpf-ns/io counted
	read -r base n _ <<<"$(fio_run)"
	iops[none]+="$base "
	row none "$base" 1.000 - -
	for name in "${names[@]:1}"; do
		case $name in
		"bpfkit biolatency") cmd=("$BPFKIT" biolatency -d "$disk") ;;
		"bpfkit biosnoop") cmd=("$BPFKIT" biosnoop -d "$disk" -o json) ;;
		"bpfkit biotop") cmd=("$BPFKIT" biotop -d "$disk" -o json 1) ;;
		"libbpf-tools biolatency") cmd=(stdbuf -oL biolatency -d "$disk") ;; # its "Tracing" line
		"libbpf-tools biosnoop") cmd=(stdbuf -oL biosnoop -d "$disk") ;;
		esac
		if ! start "$name" "${cmd[@]}"; then
			row "$name" "-" "-" "-" "does not start: $(grep -m1 -i -e fail -e error "$work/$name.err" | cut -c1-60)"
			continue
		fi
		read -r v n bpfns <<<"$(fio_run "$tracer")"
		stop
		counted=-
		case $name in
		"bpfkit biosnoop") counted="$(grep -c '"rwbs":"R' "$work/$name.out")/$n" ;;
		*biolatency) counted="$(hist_total "$work/$name.out")/$n" ;;
		"bpfkit biotop") counted="$(grep -F '"comm":"fio"' "$work/$name.out" | grep -oE '"reads":[0-9]+' | cut -d: -f2 | paste -sd+ | bc)/$n" ;;
		esac
		skips=$(grep -oE 'skipped this tool.s programs [0-9]+' "$work/$name.err" | grep -oE '[0-9]+$' || true)
		[ -z "$skips" ] || counted="$counted (kernel skipped the programs $skips times)"
		iops[$name]+="$v "
		ratio[$name]+="$(echo "scale=3; $v / $base" | bc) "
		bpf[$name]+="$bpfns "
		row "$name" "$v" "$(echo "scale=3; $v / $base" | bc)" "$bpfns" "$counted"
	done
done
echo "median over $ROUNDS rounds (IOPS, ratio to the untraced run of the same round, BPF ns per read):"
for name in "${names[@]}"; do
	[ -n "${iops[$name]:-}" ] || continue
	row "$name" "$(echo "${iops[$name]}" | median)" "$(echo "${ratio[$name]:-1.000}" | median)" "$(echo "${bpf[$name]:--}" | median)" ""
done
