#!/usr/bin/env bash
# Runs every benchmark under bench/*/run.sh in turn (root; see each script).
set -euo pipefail
cd "$(dirname "$0")"
for b in */run.sh; do
	echo "=== ${b%/run.sh}"
	"./$b"
done
