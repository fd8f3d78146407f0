#!/usr/bin/env bash
# bench/net: cost per TCP connection (connect, 100 bytes each way, close)
# between two network namespaces, without tracing, with bpfkit tcplife,
# tcpstates, tcpretrans and with libbpf-tools' tcplife and tcpstates
# (Debian package libbpf-tools; every tracer's output goes to /dev/null).
# ns/op is the loop's time per connection; tracer-cpu-ns/conn the tracer
# process's own CPU per connection (clock ticks, so coarse for small N).
# Usage (root): bench/net/tcp.sh [CONNECTIONS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
go test -run '^$' -bench BenchmarkConnections -benchtime "${1:-20000}x" -count "${2:-3}" ./bench/net/
