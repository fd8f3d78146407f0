#!/usr/bin/env bash
# Cost of `bpfkit drops --summary` on a flood of packets dropped at the
# socket layer: N UDP datagrams to a closed port on the loopback of a
# throwaway network namespace (unshare -n), ns per datagram without
# tracing and with the tracer, alternating, ROUNDS times. Also reports
# what the summary counted (it must be N per traced round). Goal: < 5%.
#
# Usage (root): bench/net/drops.sh [N] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
ROUNDS=${2:-3}
BPFKIT=${BPFKIT:-bin/bpfkit}
work=$(mktemp -d /tmp/bpfkit-bench.XXXXXX)
tpid=
trap '[ -n "$tpid" ] && kill -INT "$tpid" 2>/dev/null; rm -rf "$work"' EXIT
cc -O2 -o "$work/udpflood" bench/net/cflood/udpflood.c
[ -x "$BPFKIT" ] || go build -o "$BPFKIT" ./cmd/bpfkit

flood() { unshare -n sh -c "ip link set lo up && $work/udpflood $N"; }

echo "UDP to a closed port x $N, $(nproc) CPUs, kernel $(uname -r), $(date -u +%FT%TZ)"
printf '%-8s %12s %12s %9s %14s\n' round "base ns/pkt" "traced ns/pkt" added "NO_SOCKET seen"
for r in $(seq 1 "$ROUNDS"); do
	base=$(flood)
	"$BPFKIT" drops --summary -o json >"$work/summary" 2>"$work/stderr" &
	tpid=$!
	sleep 2 # attached well before the flood
	traced=$(flood)
	kill -INT "$tpid"
	wait "$tpid" || true
	tpid=
	seen=$(grep -E '"reason":"(NO_SOCKET|NOT_SPECIFIED)"' "$work/summary" | grep -E '"location":"(__udp4_lib_rcv|udp_rcv)"' |
		grep -oE '"count":[0-9]+' | grep -oE '[0-9]+' | paste -sd+ | bc)
	added=$(echo "scale=1; ($traced - $base) * 100 / $base" | bc)
	printf '%-8s %12s %12s %8s%% %14s\n' "$r" "$base" "$traced" "$added" "${seen:-0}"
done
