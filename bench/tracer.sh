# bench/tracer.sh: sourced by the benchmark scripts that run a CLI tracer
# in the background. The script sets $work (a scratch directory) and keeps
# the running tracer's PID in $tracer ("" when none).

# start NAME CMD...: runs a tracer in the background, output in
# $work/NAME.out, and waits until it says it is tracing (attached).
start() {
	local name=$1; shift
	"$@" >"$work/$name.out" 2>"$work/$name.err" &
	tracer=$!
	for _ in $(seq 1 1200); do
		grep -q '^Tracing' "$work/$name.out" "$work/$name.err" && return 0
		if ! kill -0 "$tracer" 2>/dev/null; then
			wait "$tracer" || true
			tracer=""
			return 1
		fi
		sleep 0.1
	done
	echo "$name did not attach within 2 minutes" >&2
	exit 1
}

# stop_tracer: Ctrl-C to the tracer, and wait for it to end.
stop_tracer() {
	kill -INT "$tracer"
	wait "$tracer" || true
	tracer=""
}
