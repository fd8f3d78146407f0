#!/usr/bin/env bash
# bench/net: both network benchmarks, TCP connections (tcp.sh: bpfkit
# tcplife, tcpstates, tcpretrans against libbpf-tools) and a flood of
# packets dropped at the socket layer (drops.sh: drops --summary), and
# softirqs against libbpf-tools' softirqs on the same flood (softirqs.sh).
# Usage (root): bench/net/run.sh
set -euo pipefail
cd "$(dirname "$0")"
./tcp.sh
./drops.sh
./softirqs.sh
