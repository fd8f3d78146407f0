#!/usr/bin/env bash
# Cost per malloc+free pair traced: mallocloop does N malloc(64)+free pairs
# (dynamic glibc) and times only its loop; every tracer attaches to the
# process (-p) while it waits on stdin, then the loop runs. Compared: bpfkit
# malloc (counts only, --stacks, --outstanding), a bpftrace uprobe that only
# counts (the bare uprobe cost), a bpftrace script doing memleak's work
# (size at entry, block kept by address with its user stack at return,
# dropped at free: a stand-in where bcc's memleak does not start), and bcc's
# memleak-bpfcc -p (uprobes on libc's allocator only).
#
# bcc compiles memleak's C when it starts, against the running kernel's
# headers (/lib/modules/$(uname -r)/build or /sys/kernel/kheaders.tar.xz).
# Where there are none, Debian's headers of another kernel do for these
# uprobes (they read only pt_regs, the same on every x86-64 kernel): with
# apt install linux-headers-amd64 (linux-headers-<v>-amd64 and -common),
# the script joins the two halves into one tree of symbolic links in its
# work directory and names it in BCC_KERNEL_SOURCE, which bcc's loader takes
# in place of /lib/modules (a BCC_KERNEL_SOURCE of the caller is kept).
#
# The machine is shared and noisy: each traced run follows its own untraced
# run (A/B pairs), "added" is the difference, "ratio" the added cost over
# the bpftrace count's added cost in the same round; the summary gives the
# median and the spread (min-max) over the rounds. "counted" is the mallocs
# the tracer saw (N, plus one for the printf after the loop); memleak prints
# only what is outstanding, so for it the runs of its malloc_enter program
# during the loop, from the kernel's statistics (progstats -hook).
#
# Usage (root; apt install bpftrace bpfcc-tools linux-headers-amd64):
#   bench/malloc/run.sh [N] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-50000}
ROUNDS=${2:-5}
BPFKIT=${BPFKIT:-bin/bpfkit}
command -v bpftrace >/dev/null || { echo "bench/malloc needs bpftrace (apt install bpftrace bpfcc-tools)" >&2; exit 1; }
work=$(mktemp -d /tmp/bpfkit-bench-malloc.XXXXXX)
tracer=""
stopsig=INT
loop=""
cleanup() {
	exec 7>&- 8<&- 2>/dev/null || true
	if [ -n "$loop" ]; then kill "$loop" 2>/dev/null || true; wait "$loop" 2>/dev/null || true; fi
	if [ -n "$tracer" ]; then kill -"$stopsig" "$tracer" 2>/dev/null || true; wait "$tracer" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
[ -x "$BPFKIT" ] || go build -o "$BPFKIT" ./cmd/bpfkit
cc -O2 -fno-builtin -o "$work/mallocloop" bench/malloc/mallocloop.c
libc=$(ldd "$work/mallocloop" | awk '$1 ~ /^libc\.so/ {print $3}')
go build -o "$work/progstats" ./bench/execsnoop/progstats
mkfifo "$work/go" "$work/done"
bcc_env=()
if [ -z "${BCC_KERNEL_SOURCE:-}" ] && [ ! -e "/lib/modules/$(uname -r)/build" ] && [ ! -e /sys/kernel/kheaders.tar.xz ]; then
	for common in $(printf "%s\n" /usr/src/linux-headers-*-common | sort -rV); do
		[ -d "${common%-common}-amd64" ] || continue
		cp -rs "$common/." "$work/kheaders"
		cp -rsf "${common%-common}-amd64/." "$work/kheaders"
		bcc_env=(BCC_KERNEL_SOURCE="$work/kheaders")
		break
	done
fi

# stop: ends the tracer by its stop signal, sent again every second (a
# bpftrace once stayed in epoll_wait after a SIGINT, its handler installed,
# and ended on the second), KILL after 10 s.
stop() {
	local i st
	for i in $(seq 0 99); do
		st=$(ps -o stat= -p "$tracer") || break
		[ "${st#Z}" = "$st" ] || break # ended, not yet waited for
		[ $((i % 10)) -ne 0 ] || kill -"$stopsig" "$tracer" 2>/dev/null || true
		sleep 0.1
	done
	kill -KILL "$tracer" 2>/dev/null || true
	wait "$tracer" || true
	tracer=""
}

# run NAME [CMD...]: starts mallocloop waiting on its stdin, starts the
# tracer (PID in CMD replaced by the loop's pid) and waits until it says it
# is attached, lets the loop go, stops the tracer. Sets ns (per pair),
# bpfns (the tracer's BPF run time per pair) and counted; returns 1 if the
# tracer did not start.
run() {
	local name=$1; shift
	"$work/mallocloop" "$N" wait <"$work/go" >"$work/done" 2>"$work/loop.err" &
	loop=$!
	exec 7>"$work/go" 8<"$work/done"
	counted=-
	# memleak: Python leaves SIGINT ignored, as a script's background job
	# has it, so it is stopped by TERM; progstats counts the runs of its
	# malloc entry program (counted, below).
	local hook=""
	stopsig=INT
	[ "$name" != "bcc memleak-bpfcc" ] || { hook='^malloc_enter$'; stopsig=TERM; }
	if [ $# -gt 0 ]; then
		# Emptied here: the background job truncates them only once it
		# runs, and the wait below must not read the last round's lines.
		: >"$work/$name.out"
		: >"$work/$name.err"
		"${@//PID/$loop}" >"$work/$name.out" 2>"$work/$name.err" &
		tracer=$!
		local i
		# memleak says "Attaching to pid" before it attaches: its first
		# report (after one interval) is the sign that it has.
		for i in $(seq 1 1200); do
			grep -qE '^(bpfkit: tracing process|Tracing|\[[0-9:]+\] Top [0-9]+ stacks)' "$work/$name.out" "$work/$name.err" && break
			if ! kill -0 "$tracer" 2>/dev/null; then
				wait "$tracer" || true
				tracer=""
				exec 7>&- 8<&-
				wait "$loop" || true
				loop=""
				return 1
			fi
			sleep 0.1
		done
		[ "$i" -lt 1200 ] || { echo "$name did not attach within 2 minutes" >&2; exit 1; }
	fi
	# Let the loop go and read its result (it closes "done" as it exits);
	# with a tracer, under progstats: the tracer's BPF time meanwhile.
	bpfns=-
	if [ -n "$tracer" ]; then
		# (If it fails, the loop never gets its byte: stop, not wait.)
		"$work/progstats" -hook "$hook" "$tracer" "$N" sh -c 'echo go >&7; exec 7>&-; cat <&8' >"$work/loop.out" 2>"$work/progstats.err" ||
			{ echo "$name: $(cat "$work/progstats.err")" >&2; exit 1; }
		bpfns=$(cut -d' ' -f1 "$work/progstats.err")
	else
		sh -c 'echo go >&7; exec 7>&-; cat <&8' >"$work/loop.out"
	fi
	exec 7>&- 8<&-
	wait "$loop"
	loop=""
	ns=$(cat "$work/loop.out")
	if [ -n "$tracer" ]; then
		stop # bpfkit has already ended with the process
		case $name in
		bpfkit*) counted=$(grep -oE '"function":"malloc","calls":[0-9]+' "$work/$name.out" | grep -oE '[0-9]+$') ;;
		"bpftrace count") counted=$(grep -oE '^@n: [0-9]+' "$work/$name.out" | grep -oE '[0-9]+$') ;;
		"bpftrace memleak-like") counted=$(grep -oE '^@n: [0-9]+' "$work/$name.out" | grep -oE '[0-9]+$') ;;
		"bcc memleak-bpfcc") counted=$(cut -d' ' -f4 "$work/progstats.err") ;;
		esac
	fi
	return 0
}

# The bpftrace programs filter on the pid: bpftrace -p does not restrict a
# uprobe to the process (other processes still trap, as with -f in bpfkit).
count_bt='BEGIN { printf("Tracing\n"); }
uprobe:LIBC:malloc /pid == PID/ { @n = count(); }
uprobe:LIBC:free /pid == PID/ { @f = count(); }'
memleak_bt='BEGIN { printf("Tracing\n"); }
uprobe:LIBC:malloc /pid == PID/ { @size[tid] = arg0; @n = count(); }
uretprobe:LIBC:malloc /pid == PID && @size[tid]/ {
	@bytes[retval] = @size[tid]; @born[retval] = nsecs; @stack[retval] = ustack;
	delete(@size[tid]);
}
uprobe:LIBC:free /pid == PID/ { delete(@bytes[arg0]); delete(@born[arg0]); delete(@stack[arg0]); }
END { clear(@bytes); clear(@born); clear(@stack); }'
names=("bpfkit malloc" "bpfkit malloc --stacks" "bpfkit malloc --outstanding" "bpftrace count" "bpftrace memleak-like" "bcc memleak-bpfcc")
declare -A added ratio bpf
row() { printf '%-28s %10s %10s %12s %8s %s\n' "$@"; }
echo "malloc(64)+free x $N, $libc, $(nproc) CPUs, kernel $(uname -r), $(date -u +%FT%TZ)"
for r in $(seq 1 "$ROUNDS"); do
	echo "--- round $r"
	row tracer ns/pair added-ns bpf-ns/pair ratio counted
	declare -A got=() gotbpf=() gotns=() gotcount=()
	for name in "${names[@]}"; do
		case $name in
		"bpfkit malloc") cmd=("$BPFKIT" malloc -o json -p PID) ;;
		"bpfkit malloc --stacks") cmd=("$BPFKIT" malloc -o json --stacks -p PID) ;;
		"bpfkit malloc --outstanding") cmd=("$BPFKIT" malloc -o json --outstanding -p PID) ;;
		"bpftrace count") cmd=(bpftrace -B line -e "${count_bt//LIBC/$libc}") ;;
		"bpftrace memleak-like") cmd=(bpftrace -B line -e "${memleak_bt//LIBC/$libc}") ;;
		"bcc memleak-bpfcc")
			command -v memleak-bpfcc >/dev/null || { gotcount[$name]="not installed (apt install bpfcc-tools)"; continue; }
			# Report every second (the sign of attachment, above); Python
			# buffers a file's output unless told not to.
			cmd=(env PYTHONUNBUFFERED=1 "${bcc_env[@]}" memleak-bpfcc -p PID 1) ;;
		esac
		run none
		base=$ns
		if ! run "$name" "${cmd[@]}"; then
			why=$(grep -h -m1 -i 'kernel headers' "$work/$name.out" "$work/$name.err" || tail -1 "$work/$name.err")
			gotcount[$name]="does not start: ${why:0:110}"
			continue
		fi
		got[$name]=$(echo "$ns - $base" | bc)
		gotns[$name]=$ns
		gotbpf[$name]=$bpfns
		gotcount[$name]=$counted
	done
	for name in "${names[@]}"; do
		if [ -z "${got[$name]:-}" ]; then
			row "$name" - - - - "${gotcount[$name]:-}"
			continue
		fi
		q=-
		[ -z "${got[bpftrace count]:-}" ] || q=$(awk -v a="${got[$name]}" -v b="${got[bpftrace count]}" 'BEGIN {printf "%.3f", a / b}')
		row "$name" "${gotns[$name]}" "${got[$name]}" "${gotbpf[$name]}" "$q" "${gotcount[$name]}/$N"
		added[$name]+="${got[$name]} "
		ratio[$name]+="$q "
		bpf[$name]+="${gotbpf[$name]} "
	done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
spread() { tr ' ' '\n' | grep . | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {print lo ".." hi}'; }
echo "median over $ROUNDS rounds (spread: min..max): added ns per pair over the untraced run before it,"
echo "ratio of that to bpftrace count's in the same round, the tracer's BPF run time per pair"
printf '%-28s %10s %18s %7s %14s %12s\n' tracer added-ns spread ratio spread bpf-ns/pair
for name in "${names[@]}"; do
	[ -n "${added[$name]:-}" ] || continue
	printf '%-28s %10s %18s %7s %14s %12s\n' "$name" "$(echo "${added[$name]}" | median)" "$(echo "${added[$name]}" | spread)" \
		"$(echo "${ratio[$name]}" | median)" "$(echo "${ratio[$name]}" | spread)" "$(echo "${bpf[$name]}" | median)"
done
