#!/usr/bin/env bash
# The full benchmark pass (every scenario, Coterie and libtorrent side by side, 3 reps unless
# given), then the README table from its results. Needs ~8 GiB free in the temp dir and
# Debian's python3-libtorrent for the reference (the pass says so and skips it otherwise).
#   scripts/bench-full.sh [--reps N] [--no-ref]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
npm run --silent build
node dist/bench/run.js "$@"
node dist/bench/readme-table.js
