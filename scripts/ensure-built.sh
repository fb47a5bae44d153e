#!/usr/bin/env bash
# Shared by the ./tracker and ./client shims: on a fresh clone, install dependencies and build once
# (saying so on stderr); afterwards this is a couple of stat calls, so start-up stays well under a second.
set -euo pipefail
ROOT="$1"
cd "$ROOT"
if [ ! -d node_modules/better-sqlite3 ] || [ ! -d node_modules/zod ]; then
  echo "coterie: first run: installing dependencies (npm ci), this takes a minute..." >&2
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund >&2; else npm install --no-audit --no-fund >&2; fi
fi
STAMP=dist/.build-stamp
if [ ! -f "$STAMP" ] || [ -n "$(find src package.json tsconfig.json -newer "$STAMP" -print -quit 2>/dev/null)" ]; then
  echo "coterie: building (tsc)..." >&2
  npx --no-install tsc -p tsconfig.json >&2
  touch "$STAMP"
fi
