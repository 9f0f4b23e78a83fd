#!/usr/bin/env bash
# UAC CPU seconds per call: sipstorm vs SIPp, same `sipp -sn uas` target, same
# offered rate, side by side in one run. A front end of
# scripts/bench-side-by-side.sh (calls only, one rate, one round by default),
# which does the measuring; see there for what each number means.
#
# Usage: scripts/bench-vs-sipp.sh [OUTDIR]
# Env:   RATE (default 3000 calls/s), CALLS (default 30000; rounded up to whole
#        seconds at RATE), WORKERS (sipstorm, default 1), ROUNDS (default 1).
# Prints "RESULT call RATE/s: sipstorm/SIPp generator CPU per op = X".
# Needs SIPp (Debian package sip-tester); installs it when missing and root.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-3000}
CALLS=${CALLS:-30000}
OUT=${1:-results/$(date -u +%Y-%m-%d)-runtime/vs-sipp}
SECS=$(((CALLS + RATE - 1) / RATE)) RATES=$RATE ONLY=calls ROUNDS=${ROUNDS:-1} \
  exec scripts/bench-side-by-side.sh "$OUT"
