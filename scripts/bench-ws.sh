#!/usr/bin/env bash
# SIP over WebSocket benchmarks (issue 16, RFC 7118) of `sipstorm run`
# against `sipstorm serve` on this machine:
#   wss-storm   wss connection storm: one new connection per digest
#               REGISTER (TCP connect + TLS handshake + Upgrade each),
#               new connections/s with zero failures
#   ws-call     calls/s over persistent ws (one connection per client worker)
#   idle        memory per idle ws and wss connection, at both ends: IDLE
#               users register over their own connection and hold it,
#               against a run of 100 users
# Usage: scripts/bench-ws.sh [OUTDIR]     (default results/<date>-ws)
# Env:   WSS_RATES   new wss connections/s (default "1000 2000 4000")
#        WS_RATES    calls/s over persistent ws (default "10000 20000 30000")
#        IDLE        idle connections for the memory step (default 5000)
#        DURATION    per step (default 5s); CLIENT_WORKERS / SERVER_WORKERS (1 / 1)
#        BACKEND     uring | epoll | auto (default auto)
#        PARTS       which parts to run (default "wss ws idle")
# A step passes when every planned attempt started and succeeded, with no
# retransmission, no failed connection and no WebSocket error. Every
# figure is written with the load average at its start: on a shared
# machine, re-run quietly.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/$(date -u +%Y-%m-%d)-ws}
DURATION=${DURATION:-5s}
WSS_RATES=${WSS_RATES:-"1000 2000 4000"}
WS_RATES=${WS_RATES:-"10000 20000 30000"}
IDLE=${IDLE:-5000}
CW=${CLIENT_WORKERS:-1}
SW=${SERVER_WORKERS:-1}
BACKEND=${BACKEND:-auto}
PARTS=${PARTS:-"wss ws idle"}
part() { [[ " $PARTS " == *" $1 "* ]]; }
WS_PORT=${WS_PORT:-15080}
WSS_PORT=${WSS_PORT:-15081}
mkdir -p "$OUT"
cargo build --release --bin sipstorm >/dev/null 2>&1 || cargo build --release --bin sipstorm
BIN=${SIPSTORM:-target/release/sipstorm}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

SERVE=
start_serve() {
  "$BIN" serve --listen "ws:127.0.0.1:$WS_PORT" --listen "wss:127.0.0.1:$WSS_PORT" \
    --workers "$SW" --backend "$BACKEND" --quiet 2>>"$OUT/serve.log" &
  SERVE=$!
  for _ in $(seq 1 50); do
    ss -ltn 2>/dev/null | grep -q ":$WSS_PORT " && break
    sleep 0.1
  done
}
stop_serve() {
  if [ -n "$SERVE" ]; then kill "$SERVE" 2>/dev/null || true; wait "$SERVE" 2>/dev/null || true; SERVE=; fi
}
trap stop_serve EXIT

LOG="$OUT/bench-ws.txt"
{
  echo "# bench-ws $(date -u +%FT%TZ)"
  echo "# host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
  echo "# git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "# serve --workers $SW; run --workers $CW; backend $BACKEND; $DURATION per step"
  echo "# uptime: $(uptime)"
} | tee -a "$LOG"

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# step NAME RATE ARGS...: one run against a fresh serve; prints a line.
step() {
  local name=$1 rate=$2 dir="$OUT/$1-$2"
  shift 2
  rm -rf "$dir"
  start_serve
  local la
  la=$(loadavg)
  "$BIN" run --rate "$rate" --duration "$DURATION" --workers "$CW" --backend "$BACKEND" \
    --quiet --out "$dir" --drain 5s "$@" >/dev/null 2>"$dir.stderr" || true
  stop_serve
  python3 - "$dir/report.json" "$name" "$rate" "$la" <<'PY' | tee -a "$LOG"
import json, sys
r = json.load(open(sys.argv[1])); name, rate, la = sys.argv[2], float(sys.argv[3]), sys.argv[4]
s = r["scenario"]
t = r["totals"]["register" if s == "register" else "call"]
done = t.get("succeeded", t.get("completed", 0))
failed = t.get("failed", 0)
planned = rate * r["config"]["duration_s"]
tr = r["transport"]
ok = (t["attempted"] >= 0.99 * planned and failed == 0 and done == t["attempted"]
      and r["messages"]["retransmitted"] == 0 and tr["connections_failed"] == 0
      and not tr["ws_errors"])
load_s = r["rate"]["load_duration_s"] or r["duration_s"]
conns_per_s = tr["connections_opened"] / load_s if load_s else 0
p = r["process"]
lat = r["rfc6076"]["rrd_ms" if s == "register" else "srd_ms"]
hs, up = tr["tls_handshake_ms"], tr["ws_upgrade_ms"]
print(f'{name:<10} offered {rate:>7.0f}/s achieved {r["rate"]["achieved_per_s"]:>8.0f}/s '
      f'{"PASS" if ok else "FAIL"} failed {failed} conns {tr["connections_opened"]} '
      f'({conns_per_s:.0f}/s, failed {tr["connections_failed"]}, ws errors {tr["ws_errors"] or 0}) '
      f'p99 {lat.get("p99")} ms tls p50/p99 {hs.get("p50")}/{hs.get("p99")} ms '
      f'upgrade p50/p99 {up.get("p50")}/{up.get("p99")} ms '
      f'cpu {p["cpu_user_s"] + p["cpu_sys_s"]:.2f}s rss {p["max_rss_kib"]} KiB load [{la}]')
PY
}

part wss && echo "## wss connection storm: one new connection (TCP + TLS + Upgrade) per digest REGISTER" | tee -a "$LOG"
part wss && for rate in $WSS_RATES; do
  step wss-storm "$rate" --target "127.0.0.1:$WSS_PORT" --transport wss --tls-insecure \
    --scenario register --connection-mode call --user-pattern 'u{000000..099999}'
done

part ws && echo "## calls over persistent ws (one connection per client worker)" | tee -a "$LOG"
part ws && for rate in $WS_RATES; do
  step ws-call "$rate" --target "127.0.0.1:$WS_PORT" --transport ws --scenario call
done

# Memory per idle connection: users register over their own connection
# (--connection-mode user) and hold the registration, so the connections
# stay open and idle; resident memory of both ends is read while they are,
# IDLE users against 100.
rss_of() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
idle_rss() { # kind users -> "serve_kib run_kib established"
  local kind=$1 n=$2 port=$WS_PORT extra=() run_pid s r
  [ "$kind" = wss ] && port=$WSS_PORT && extra=(--tls-insecure)
  start_serve
  "$BIN" run --target "127.0.0.1:$port" --transport "$kind" "${extra[@]}" --scenario register \
    --connection-mode user --user-pattern "i{000000..$(printf '%06d' $((n - 1)))}" --count "$n" \
    --rate 2000 --hold 30s --workers "$CW" --backend "$BACKEND" --quiet --drain 35s \
    --out "$OUT/idle-$kind-$n" >/dev/null 2>&1 &
  run_pid=$!
  sleep $((n / 2000 + 4))
  s=$(rss_of "$SERVE"); r=$(rss_of "$run_pid")
  echo "$s $r $(ss -tn state established 2>/dev/null | grep -c ":$port " || true)"
  kill -INT "$run_pid" 2>/dev/null || true
  wait "$run_pid" 2>/dev/null || true
  stop_serve
}
part idle && echo "## memory per idle connection ($IDLE connections vs 100)" | tee -a "$LOG"
part idle && for kind in ws wss; do
  la=$(loadavg)
  read -r s0 r0 e0 < <(idle_rss "$kind" 100)
  read -r s1 r1 e1 < <(idle_rss "$kind" "$IDLE")
  awk -v k="$kind" -v n="$IDLE" -v s0="$s0" -v s1="$s1" -v r0="$r0" -v r1="$r1" -v e="$e1" -v la="$la" 'BEGIN {
    printf "idle-%-4s  %d connections (%s established at the serve port): serve %.1f KiB/conn, run %.1f KiB/conn (rss %d->%d / %d->%d KiB) load [%s]\n",
      k, n, e, (s1 - s0) / (n - 100), (r1 - r0) / (n - 100), s0, s1, r0, r1, la }' | tee -a "$LOG"
done
echo "# done $(date -u +%FT%TZ); uptime: $(uptime)" | tee -a "$LOG"
