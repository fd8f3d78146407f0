#!/usr/bin/env bash
# bench/serve/events.sh: what `bpfkit serve` adds to each event it counts,
# side by side with the CLI tools that count or show the same events. Four
# loops, each run in every round with no tracer, under `bpfkit serve --tools
# T` (listening on 127.0.0.1 only) and under each CLI tool in turn:
#
#   openfail  N openat of a path that does not exist (ENOENT): serve's
#             openerr, opensnoop -x (failed opens), syscount -e ENOENT
#   openok    N openat+close of a file: the opens openerr does not count
#             (its program still runs at each), opensnoop -x
#   exec      N fork+exec+wait of /bin/true: serve's exec, execsnoop
#   switch    `perf bench sched pipe`, N round trips, both tasks pinned to
#             CPU: two context switches per round trip: serve's cswitch,
#             bpfkit cswitch
#
# (bench/opensnoop/openloop.c, bench/execsnoop/execloop.c, and the pipe
# ping-pong of bench/sched.) Each tracer's output goes to /dev/null.
#
# Columns per round: wall ns per event with no tracer (the run just before,
# in the same round) and with the tracer, and the difference: noisy on a
# shared machine. Then, from the kernel's own run-time statistics
# (bench/execsnoop/progstats: BPF_ENABLE_STATS, on only while a loop runs,
# off again when it exits whatever happens): the BPF ns per event, the run
# time of all the tracer's programs over the runs of its program at the
# event's hook (exit_open, sys_exit, sched_switch, and at exec EXEC_HOOK:
# execsnoop's exec_done, serve's sched_process_exec_btf), which counts
# the machine's other events of that hook too; "runs/ev" is those runs per
# event of the loop (about 1: the loop is nearly all the hook sees). The
# tracepoint's own dispatch, and for syscall tracepoints the slower traced
# syscall path that attaching any of them turns on, are not in it: they are
# in the wall figure only. At the end, medians and [min..max] over rounds,
# and for each CLI tool serve's BPF ns over its own, round by round.
#
# PAIRED=1: serve's tool and the CLI tool attached at once instead, on the
# same events of one loop (openfail: openerr and opensnoop -x; exec: exec
# and execsnoop; switch: cswitch and bpfkit cswitch), so the machine's
# stalls fall on both alike; the one attached first (whose program runs
# first, and costs more) swaps from round to round. Per round the BPF ns
# per event of each; at the end serve/CLI per order and for both orders
# (the geometric mean of the two orders' medians, where the order's factor
# cancels).
#
# Usage (root): [PAIRED=1] bench/serve/events.sh [ROUNDS]
#   N_OPEN, N_EXEC, N_SWITCH (round trips) size the loops; CPU the ping-pong's
#   CPU; ONLY=REGEX runs the loops whose name matches; BPFKIT a binary to use
#   (default: built from this tree).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
N_OPEN=${N_OPEN:-500000}
N_EXEC=${N_EXEC:-1000}
N_SWITCH=${N_SWITCH:-300000}
CPU=${CPU:-1}
work=$(mktemp -d /tmp/bpfkit-serve-events.XXXXXX)
tracer_pid=
stop_tracer() {
	if [ -n "$tracer_pid" ]; then
		kill -INT "$tracer_pid" 2>/dev/null || true
		wait "$tracer_pid" 2>/dev/null || true
		tracer_pid=
	fi
}
paired=()
# stop_paired stops the tracers of a PAIRED round.
stop_paired() {
	for p in "${paired[@]}"; do kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	paired=()
}
cleanup() {
	stop_tracer
	stop_paired
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
BPFKIT=${BPFKIT:-$work/bpfkit}
[ -x "$BPFKIT" ] || go build -o "$BPFKIT" ./cmd/bpfkit
go build -o "$work/progstats" ./bench/execsnoop/progstats
cc -O2 -o "$work/openloop" bench/opensnoop/openloop.c
cc -O2 -o "$work/execloop" bench/execsnoop/execloop.c
: >"$work/target"

# loop KIND N: the command of a loop (in the array cmd).
loop() {
	case $1 in
	openfail) cmd=("$work/openloop" "$2" "$work/missing" 2) ;;
	openok) cmd=("$work/openloop" "$2" "$work/target") ;;
	exec) cmd=("$work/execloop" "$2" /bin/true "r$RANDOM") ;;
	switch) cmd=(taskset -c "$CPU" perf bench sched pipe -l "$2") ;;
	esac
}
# events KIND N: events of a loop of N.
events() { if [ "$1" = switch ]; then echo $(($2 * 2)); else echo "$2"; fi; }
# walls KIND: wall ns per event from a loop's output on stdin.
walls() {
	if [ "$1" = switch ]; then
		awk '/usecs\/op/ {printf "%.1f\n", $1 * 1000 / 2}'
	else
		awk 'NR == 1 {print $1}'
	fi
}
size() {
	case $1 in
	openfail | openok) echo "$N_OPEN" ;;
	exec) echo "$N_EXEC" ;;
	switch) echo "$N_SWITCH" ;;
	esac
}

# free_port: a TCP port nothing listens on, for serve on 127.0.0.1.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}

# start KIND HOOK CMD...: starts a tracer, waits until its program at HOOK
# runs at a small loop of KIND (it is attached); 1 when it never does.
start() {
	local kind=$1 hook=$2 runs
	shift 2
	"$@" >/dev/null 2>"$work/err" &
	tracer_pid=$!
	loop "$kind" 10
	for _ in $(seq 1 300); do
		if ! kill -0 "$tracer_pid" 2>/dev/null; then break; fi
		if "$work/progstats" -hook "$hook" "$tracer_pid" 1 "${cmd[@]}" >/dev/null 2>"$work/ready"; then
			read -r _ _ _ runs <"$work/ready"
			[ "${runs:-0}" -gt 0 ] && return 0
		fi
		sleep 0.1
	done
	echo "$*: never attached:" >&2
	cat "$work/err" "$work/ready" >&2
	stop_tracer
	return 1
}

# metric_sum PORT NAME: the sum of a metric's series, scraped from serve.
metric_sum() {
	curl -sf "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 {s += $NF} END {printf "%d\n", s}'
}

results="$work/results"
row() { printf '%-8s %-26s %9s %9s %9s | %9s %7s\n' "$@"; }

# measure KIND NAME HOOK METRIC CMD...: one round of one tracer: a loop
# with no tracer, then the tracer started, the loop under it, a row.
measure() {
	local kind=$1 name=$2 hook=$3 metric=$4
	shift 4
	local n ev base on ns hookruns port= counted
	n=$(size "$kind")
	ev=$(events "$kind" "$n")
	loop "$kind" "$n"
	base=$("${cmd[@]}" 2>/dev/null | walls "$kind") || true
	if [ "$1" = serve ]; then
		port=$(free_port)
		set -- "$BPFKIT" serve --listen "127.0.0.1:$port" --tools "$2"
	fi
	start "$kind" "$hook" "$@" || return 0
	loop "$kind" "$n"
	on=$("$work/progstats" -hook "$hook" "$tracer_pid" "$ev" "${cmd[@]}" 2>"$work/stats" | walls "$kind") || true
	read -r _ _ ns hookruns _ <<<"$(cat "$work/stats") x" || true
	if [ -z "$base" ] || [ -z "$on" ] || ! [[ "$hookruns" =~ ^[0-9]+$ ]] || [ "$hookruns" -eq 0 ]; then
		echo "$kind $name: no measure: $(cat "$work/stats")" >&2
		stop_tracer
		return 0
	fi
	if [ -n "$port" ] && [ "$metric" != - ]; then
		counted=$(metric_sum "$port" "$metric")
		# Every event of the loop is in the metric (with the machine's).
		[ "$counted" -ge "$ev" ] || echo "serve: $metric is $counted after $ev events" >&2
	fi
	stop_tracer
	local a b
	a=$(echo "$on - $base" | bc)
	b=$(echo "scale=1; $ns / $hookruns" | bc)
	row "$kind" "$name" "$base" "$on" "$a" "$b" "$(echo "scale=2; $hookruns / $ev" | bc)"
	echo "$kind|$name|$base|$on|$a|$b|$round" >>"$results"
}

# stat V...: "median [min..max]".
stat() {
	printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.0f [%.0f..%.0f]\n", m, v[1], v[NR] }'
}

# ratio V...: "median [min..max]" of ratios.
ratio() {
	printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.2f [%.2f..%.2f]\n", m, v[1], v[NR] }'
}

# The programs at sched_process_exec: execsnoop's (a plain tracepoint) and
# serve's (a BTF one, sched_process_exec_btf: the kernel keeps 15
# characters of a name, cilium/ebpf gives the whole one where BTF has it).
EXEC_HOOK='^(exec_done$|sched_process_e(xec_btf)?$)'

want() { [ -z "${ONLY:-}" ] || [[ $1 =~ $ONLY ]]; }

# pair KIND HOOK CLI...: one round of serve's tool for KIND and the CLI
# tool at once, attached in the order of $first (serve or cli); prints a
# row and appends "KIND|first|serve ns|cli ns" to $results.
pair() {
	local kind=$1 hook=$2 tool port n ev sp cp ns runs sns cns
	shift 2
	case $kind in openfail) tool=openerr ;; exec) tool=exec ;; switch) tool=cswitch ;; esac
	port=$(free_port)
	local srv=("$BPFKIT" serve --listen "127.0.0.1:$port" --tools "$tool")
	if [ "$first" = serve ]; then
		start "$kind" "$hook" "${srv[@]}" || return 0; sp=$tracer_pid; paired=("$sp"); tracer_pid=
		start "$kind" "$hook" "$@" || { stop_paired; return 0; }; cp=$tracer_pid; paired+=("$cp"); tracer_pid=
	else
		start "$kind" "$hook" "$@" || return 0; cp=$tracer_pid; paired=("$cp"); tracer_pid=
		start "$kind" "$hook" "${srv[@]}" || { stop_paired; return 0; }; sp=$tracer_pid; paired+=("$sp"); tracer_pid=
	fi
	n=$(size "$kind")
	ev=$(events "$kind" "$n")
	loop "$kind" "$n"
	ns=$("$work/progstats" -hook "$hook" "$sp,$cp" "$ev" "${cmd[@]}" 2>"$work/stats" | walls "$kind") || true
	stop_paired
	# progstats: a line per tracer, serve's first: ns per event, runs, ns, hook runs
	read -r sns cns <<<"$(awk '$4 > 0 {printf "%.1f ", $3 / $4}' "$work/stats")"
	printf '%-8s %-8s %12s %14s %14s %8s\n' "$kind" "$first" "$ns" "${sns:--}" "${cns:--}" \
		"$([ -n "${cns:-}" ] && awk -v a="$sns" -v b="$cns" 'BEGIN {printf "%.3f", a / b}')"
	[ -z "${cns:-}" ] || echo "$kind|$first|$sns|$cns" >>"$results"
}

if [ "${PAIRED:-}" = 1 ]; then
	echo "$(nproc) CPUs, kernel $(uname -r), $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg); serve's tool and the CLI's at once"
	echo "N_OPEN=$N_OPEN N_EXEC=$N_EXEC N_SWITCH=$N_SWITCH (round trips, on CPU $CPU), $ROUNDS rounds"
	printf '%-8s %-8s %12s %14s %14s %8s\n' loop first "ns/ev both" "serve bpf ns" "CLI bpf ns" serve/CLI
	for round in $(seq 1 "$ROUNDS"); do
		if [ $((round % 2)) -eq 1 ]; then first=serve; else first=cli; fi
		! want openfail || pair openfail exit_open "$BPFKIT" opensnoop -x
		! want exec || pair exec "$EXEC_HOOK" "$BPFKIT" execsnoop
		! want switch || pair switch switch "$BPFKIT" cswitch
	done
	[ -s "$results" ] || exit 1
	echo "=== serve/CLI BPF ns per event: medians per order, and both orders (geometric mean of the two)"
	for kind in openfail exec switch; do
		ms=$(awk -F'|' -v k="$kind" '$1 == k && $2 == "serve" {print $3 / $4}' "$results" | sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}')
		mc=$(awk -F'|' -v k="$kind" '$1 == k && $2 == "cli" {print $3 / $4}' "$results" | sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}')
		[ -n "$ms" ] && [ -n "$mc" ] || continue
		echo "$kind: serve attached first $ms, CLI first $mc; both orders $(awk -v a="$ms" -v b="$mc" 'BEGIN {printf "%.3f", sqrt(a * b)}')"
	done
	exit 0
fi

echo "$(nproc) CPUs, kernel $(uname -r), $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "N_OPEN=$N_OPEN N_EXEC=$N_EXEC N_SWITCH=$N_SWITCH (round trips, on CPU $CPU), $ROUNDS rounds"
for round in $(seq 1 "$ROUNDS"); do
	echo "--- round $round: load $(cut -d' ' -f1-3 /proc/loadavg), $(bpftool perf -j 2>/dev/null | jq length) BPF tracepoint attachments on the machine before"
	row loop tracer "base ns" "ns/ev" "added" "bpf ns/ev" "runs/ev"
	if want openfail; then
		measure openfail "serve --tools openerr" exit_open bpfkit_open_errors_total serve openerr
		measure openfail "opensnoop -x" exit_open - "$BPFKIT" opensnoop -x
		measure openfail "syscount -e ENOENT" sys_exit - "$BPFKIT" syscount -e ENOENT
	fi
	if want openok; then
		measure openok "serve --tools openerr" exit_open - serve openerr
		measure openok "opensnoop -x" exit_open - "$BPFKIT" opensnoop -x
	fi
	if want exec; then
		measure exec "serve --tools exec" "$EXEC_HOOK" bpfkit_exec_total serve exec
		measure exec "execsnoop" "$EXEC_HOOK" - "$BPFKIT" execsnoop
	fi
	if want switch; then
		measure switch "serve --tools cswitch" switch bpfkit_context_switches_total serve cswitch
		measure switch "cswitch" switch - "$BPFKIT" cswitch
	fi
done
echo "=== medians [min..max] over $ROUNDS rounds, ns per event; load now $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %-26s %-22s %-22s %-16s %s\n' loop tracer "base ns" "added ns (wall)" "bpf ns/ev" "serve/CLI bpf"
[ -s "$results" ] || exit 1
cut -d'|' -f1,2 "$results" | awk '!seen[$0]++' | while IFS='|' read -r kind name; do
	mapfile -t b < <(awk -F'|' -v k="$kind" -v n="$name" '$1 == k && $2 == n {print $3}' "$results")
	mapfile -t a < <(awk -F'|' -v k="$kind" -v n="$name" '$1 == k && $2 == n {print $5}' "$results")
	mapfile -t p < <(awk -F'|' -v k="$kind" -v n="$name" '$1 == k && $2 == n {print $6}' "$results")
	# serve's BPF ns over this CLI tool's, in each round both ran.
	mapfile -t q < <(awk -F'|' -v k="$kind" -v n="$name" '$1 == k && $2 ~ /^serve / {s[$7] = $6}
		$1 == k && $2 == n && n !~ /^serve / && ($7 in s) && $6 > 0 {printf "%.3f\n", s[$7] / $6}' "$results")
	printf '%-8s %-26s %-22s %-22s %-16s %s\n' "$kind" "$name" "$(stat "${b[@]}")" "$(stat "${a[@]}")" "$(stat "${p[@]}")" \
		"$([ ${#q[@]} -gt 0 ] && ratio "${q[@]}")"
done
