#!/usr/bin/env bash
# bench/serve: one scrape of 10,000 series (time, allocations, peak RSS),
# then serve's idle cost: CPU time (utime+stime of /proc/PID/stat) of
# `bpfkit serve` with its default tools over 60 s with nobody scraping.
# Then bench/serve/events.sh: the cost per exec, open and context switch
# counted, side by side with the CLI tools (EVENT_ROUNDS rounds, default 3).
# Run as root from anywhere; SECONDS_IDLE=N changes the 60, PORT the port.
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -run '^$' -bench 'BenchmarkScrape|BenchmarkServeProcess' -benchtime 20x -count 1 ./bench/serve/

idle=${SECONDS_IDLE:-60}
go build -o /tmp/bpfkit-bench-serve ./cmd/bpfkit
/tmp/bpfkit-bench-serve serve --listen "127.0.0.1:${PORT:-10064}" 2>/dev/null &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
sleep 5 # loaded and settled
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks)
sleep "$idle"
t1=$(ticks)
awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$idle" 'BEGIN {
	printf "idle: %d ticks (%.2f s of CPU) in %d s: %.3f%% of one CPU (default tools, nobody scraping)\n", d, d / hz, s, 100 * d / hz / s }'
kill -TERM $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
trap - EXIT
bench/serve/events.sh "${EVENT_ROUNDS:-3}"
