#!/usr/bin/env bash
# SIP over WebSocket benchmarks (issue 16, RFC 7118) of `sipstorm run`
# against `sipstorm serve` on this machine, written into OUTDIR (default
# results/<date>-ws/bench-ws.txt and one report per step):
#   wss   wss connection storm: one new connection (TCP connect, TLS
#         handshake, Upgrade) per digest REGISTER, new connections/s with
#         zero failures, at WSS_RATES (default "1000 2000 4000")
#   ws    calls/s over persistent ws (one connection per client worker), at
#         WS_RATES (default "10000 20000 30000")
#   idle  memory per idle ws and wss connection at both ends (IDLE users,
#         default 5000, each holding its own connection, against 100)
# The steps are scripts/bench-stream.sh's (same serve, same pass rule: every
# planned attempt started and succeeded, no retransmission, no failed
# connection, no WebSocket error; every figure with its load average).
# Usage: scripts/bench-ws.sh [OUTDIR]
# Env: those of scripts/bench-stream.sh (DURATION, CLIENT_WORKERS,
#      SERVER_WORKERS, BACKEND, PARTS, WSS_RATES, WS_RATES, IDLE).
set -euo pipefail
cd "$(dirname "$0")/.."
export PARTS=${PARTS:-"wss ws idle"} IDLE_KINDS="ws wss" BENCH_NAME=bench-ws
exec bash scripts/bench-stream.sh "${1:-results/$(date -u +%Y-%m-%d)-ws}"
