#!/usr/bin/env bash
# TCP and TLS benchmarks of `sipstorm run` against `sipstorm serve` on this
# machine (issue 15; SPEC "Performance commitments": TCP >= 30,000 calls/s
# over persistent connections; TLS >= 5,000 new connections/s each with a
# digest REGISTER, zero failures; <= 32 KiB per idle TLS connection at each
# end), side by side with SIPp over TCP where SIPp can (Debian's SIPp has
# no TLS: built without OpenSSL, so `-t l1`/`-t ln` cannot run here).
# The SIP over WebSocket parts (issue 16) are run by scripts/bench-ws.sh,
# which calls this script with PARTS="wss ws idle" and IDLE_KINDS="ws wss".
#
# Usage: scripts/bench-stream.sh [OUTDIR]
# Env:   TCP_RATES   calls/s over persistent TCP (default "10000 20000 30000 40000")
#        TLS_RATES   new TLS connections/s, one REGISTER each (default "1000 2000 5000 8000")
#        SIPP_RATES  SIPp -t t1 / -t tn call rates (default "1000 2000 5000")
#        IDLE        idle connections for the memory step (default 5000)
#        DURATION    per step (default 5s); CLIENT_WORKERS / SERVER_WORKERS (1 / 1)
#        BACKEND     uring | epoll | auto (default auto)
#        PARTS       which parts to run (default "tcp tls idle side sipp"; side:
#                    sipstorm at SIPP_RATES, one connection and one per call;
#                    also wss: a wss connection storm at WSS_RATES, ws: calls
#                    over persistent ws at WS_RATES)
#        IDLE_KINDS  transports of the idle-memory part (default "tcp tls")
#        BENCH_NAME  the log's name, OUTDIR/BENCH_NAME.txt (default bench-stream)
# A step passes when every planned attempt started and succeeded, with no
# retransmission and no failed connection. Every figure is written with the
# load average at its start: on a shared machine, re-run quietly.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/$(date -u +%Y-%m-%d)-stream}
DURATION=${DURATION:-5s}
TCP_RATES=${TCP_RATES:-"10000 20000 30000 40000"}
TLS_RATES=${TLS_RATES:-"1000 2000 5000 8000"}
SIPP_RATES=${SIPP_RATES:-"1000 2000 5000"}
IDLE=${IDLE:-5000}
CW=${CLIENT_WORKERS:-1}
SW=${SERVER_WORKERS:-1}
BACKEND=${BACKEND:-auto}
PARTS=${PARTS:-"tcp tls idle side sipp"}
WSS_RATES=${WSS_RATES:-"1000 2000 4000"}
WS_RATES=${WS_RATES:-"10000 20000 30000"}
IDLE_KINDS=${IDLE_KINDS:-"tcp tls"}
part() { [[ " $PARTS " == *" $1 "* ]]; }
TCP_PORT=${TCP_PORT:-15070}
TLS_PORT=${TLS_PORT:-15071}
WS_PORT=${WS_PORT:-15080}
WSS_PORT=${WSS_PORT:-15081}
mkdir -p "$OUT"
cargo build --release --bin sipstorm >/dev/null 2>&1 || cargo build --release --bin sipstorm
BIN=target/release/sipstorm
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

SERVE=
start_serve() {
  "$BIN" serve --listen "tcp:127.0.0.1:$TCP_PORT" --listen "tls:127.0.0.1:$TLS_PORT" \
    --listen "ws:127.0.0.1:$WS_PORT" --listen "wss:127.0.0.1:$WSS_PORT" --workers "$SW" --backend "$BACKEND" --quiet 2>>"$OUT/serve.log" &
  SERVE=$!
  for _ in $(seq 1 50); do
    ss -ltn 2>/dev/null | grep -q ":$WSS_PORT " && break
    sleep 0.1
  done
}
stop_serve() {
  if [ -n "$SERVE" ]; then kill "$SERVE" 2>/dev/null || true; wait "$SERVE" 2>/dev/null || true; SERVE=; fi
}
SIPP_PID=
stop_sipp() {
  if [ -n "$SIPP_PID" ]; then kill "$SIPP_PID" 2>/dev/null || true; wait "$SIPP_PID" 2>/dev/null || true; SIPP_PID=; fi
}
trap 'stop_serve; stop_sipp' EXIT

LOG="$OUT/${BENCH_NAME:-bench-stream}.txt"
{
  echo "# ${BENCH_NAME:-bench-stream} $(date -u +%FT%TZ); uptime: $(uptime)"
  echo "# host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
  echo "# git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "# serve --workers $SW; run --workers $CW; backend $BACKEND; $DURATION per step"
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
      and not tr.get("ws_errors"))
load_s = r["rate"]["load_duration_s"] or r["duration_s"]
conns_per_s = tr["connections_opened"] / load_s if load_s else 0
p = r["process"]
lat = r["rfc6076"]["rrd_ms" if s == "register" else "srd_ms"]
hs = tr["tls_handshake_ms"]
up = tr.get("ws_upgrade_ms") or {}
ws = (f'upgrade p50/p99 {up.get("p50")}/{up.get("p99")} ms ws errors {tr["ws_errors"] or 0} '
      if up.get("count") else "")
print(f'{name:<14} offered {rate:>7.0f}/s achieved {r["rate"]["achieved_per_s"]:>8.0f}/s '
      f'{"PASS" if ok else "FAIL"} failed {failed} conns {tr["connections_opened"]} '
      f'({conns_per_s:.0f}/s, resumed {tr["tls_resumed"]}, failed {tr["connections_failed"]}) '
      f'p99 {lat.get("p99")} ms handshake p50/p99 {hs.get("p50")}/{hs.get("p99")} ms {ws}'
      f'cpu {p["cpu_user_s"] + p["cpu_sys_s"]:.2f}s rss {p["max_rss_kib"]} KiB load [{la}]')
PY
}

part tcp && echo "## calls over persistent TCP (one connection per client worker)" | tee -a "$LOG"
part tcp && for rate in $TCP_RATES; do
  step tcp-call "$rate" --target "127.0.0.1:$TCP_PORT" --transport tcp --scenario call
done

part tls && echo "## TLS handshake storm: one new connection per REGISTER (digest)" | tee -a "$LOG"
part tls && for rate in $TLS_RATES; do
  step tls-storm "$rate" --target "127.0.0.1:$TLS_PORT" --transport tls --tls-insecure \
    --scenario register --connection-mode call --user-pattern 'u{000000..099999}'
  step tls-storm-resume "$rate" --target "127.0.0.1:$TLS_PORT" --transport tls --tls-insecure \
    --scenario register --connection-mode call --tls-resume --user-pattern 'u{000000..099999}'
done

part wss && echo "## wss connection storm: one new connection (TCP + TLS + Upgrade) per digest REGISTER" | tee -a "$LOG"
part wss && for rate in $WSS_RATES; do
  step wss-storm "$rate" --target "127.0.0.1:$WSS_PORT" --transport wss --tls-insecure \
    --scenario register --connection-mode call --user-pattern 'u{000000..099999}'
done

part ws && echo "## calls over persistent ws (one connection per client worker)" | tee -a "$LOG"
part ws && for rate in $WS_RATES; do
  step ws-call "$rate" --target "127.0.0.1:$WS_PORT" --transport ws --scenario call
done

# Memory per idle connection: IDLE users register over their own
# connection (--connection-mode user) and hold the registration, so the
# connections stay open and idle; resident memory of both ends is read
# while they are, against a run of 100 users.
rss_of() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
idle_rss() { # kind users -> "serve_kib run_kib"
  local kind=$1 n=$2 port=$TCP_PORT extra=() run_pid s r
  case $kind in
    tls) port=$TLS_PORT extra=(--tls-insecure) ;;
    ws) port=$WS_PORT ;;
    wss) port=$WSS_PORT extra=(--tls-insecure) ;;
  esac
  start_serve
  "$BIN" run --target "127.0.0.1:$port" --transport "$kind" "${extra[@]}" --scenario register \
    --connection-mode user --user-pattern "i{000000..$(printf '%06d' $((n - 1)))}" --count "$n" \
    --rate 2000 --hold 30s --workers "$CW" --backend "$BACKEND" --quiet --drain 35s \
    --out "$OUT/idle-$kind-$n" >/dev/null 2>&1 &
  run_pid=$!
  # Every registration done (n / 2000 s) plus time to settle.
  sleep $((n / 2000 + 4))
  s=$(rss_of "$SERVE"); r=$(rss_of "$run_pid")
  echo "$s $r $(ss -tn state established 2>/dev/null | grep -c ":$port " || true)"
  kill -INT "$run_pid" 2>/dev/null || true
  wait "$run_pid" 2>/dev/null || true
  stop_serve
}
part idle && echo "## memory per idle connection ($IDLE connections vs 100)" | tee -a "$LOG"
part idle && for kind in $IDLE_KINDS; do
  la=$(loadavg)
  read -r s0 r0 e0 < <(idle_rss "$kind" 100)
  read -r s1 r1 e1 < <(idle_rss "$kind" "$IDLE")
  awk -v k="$kind" -v n="$IDLE" -v s0="$s0" -v s1="$s1" -v r0="$r0" -v r1="$r1" -v e="$e1" -v la="$la" 'BEGIN {
    printf "idle-%s        %d connections (%s established at the serve port): serve %.1f KiB/conn, run %.1f KiB/conn (rss %d->%d / %d->%d KiB) load [%s]\n",
      k, n, e, (s1 - s0) / (n - 100), (r1 - r0) / (n - 100), s0, s1, r0, r1, la }' | tee -a "$LOG"
done

# sipstorm at the rates SIPp is run at, for CPU side by side: one
# connection (SIPp's -t t1) and one per call (-t tn).
part side && echo "## sipstorm over TCP at the SIPp rates (same serve)" | tee -a "$LOG"
part side && for mode in shared call; do
  for rate in $SIPP_RATES; do
    step "side-tcp-$mode" "$rate" --target "127.0.0.1:$TCP_PORT" --transport tcp --scenario call \
      --connection-mode "$mode"
  done
done

# SIPp over TCP against the same serve at the same rates: -t t1 (one
# connection) and -t tn (one per call). CPU is SIPp's own.
if part sipp && command -v sipp >/dev/null 2>&1; then
  echo "## SIPp over TCP against serve (same rates)" | tee -a "$LOG"
  for mode in t1 tn; do
    for rate in $SIPP_RATES; do
      start_serve
      la=$(loadavg)
      n=$((rate * ${DURATION%s}))
      d="$OUT/sipp-$mode-$rate"
      mkdir -p "$d"
      ( cd "$d" && /usr/bin/time -f "%U %S %M" -o time.txt timeout 120 sipp -sn uac -t "$mode" \
          "127.0.0.1:$TCP_PORT" -i 127.0.0.1 -m "$n" -r "$rate" -max_socket 15000 -nostdin \
          -trace_stat -stf stat.csv -fd 1 >sipp.out 2>&1 ) || true
      stop_serve
      python3 - "$d" "$mode" "$rate" "$n" "$la" <<'PY' | tee -a "$LOG"
import csv, sys
d, mode, rate, n, la = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rows = list(csv.reader(open(f"{d}/stat.csv"), delimiter=";"))
h, last = rows[0], rows[-1]
get = lambda c: last[h.index(c)] if c in h else "NA"
ok, failed = get("SuccessfulCall(C)"), get("FailedCall(C)")
elapsed = get("ElapsedTime(C)")
u, s, m = open(f"{d}/time.txt").read().split()[-3:]
print(f"sipp-{mode:<9} offered {rate:>7}/s ok {ok}/{n} failed {failed} elapsed {elapsed} "
      f"cpu {float(u) + float(s):.2f}s maxrss {m} KiB load [{la}]")
PY
    done
  done
fi
echo "# load average after: $(loadavg)" | tee -a "$LOG"
