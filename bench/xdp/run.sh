#!/usr/bin/env bash
# XDP per-packet cost (BPF_PROG_TEST_RUN) and the live veth comparison; see README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH_ROUNDS=${BENCH_ROUNDS:-8} go test -run '^$' -bench XDP -benchtime 3000000x ./bench/xdp/
BENCH_ROUNDS=${BENCH_ROUNDS:-8} go test -run '^$' -bench Live -benchtime 2000000x ./bench/xdp/
