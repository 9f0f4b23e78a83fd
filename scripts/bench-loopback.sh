#!/usr/bin/env bash
# Highest call rate and digest-registration rate that `sipstorm run` sustains
# against `sipstorm serve` on this machine with zero failures.
#
# Usage: scripts/bench-loopback.sh [OUTDIR]
# Env:   CALL_RATES / REG_RATES   rates to try, ascending (stop at the first failure)
#        DURATION                 per step (default 5s)
#        CLIENT_WORKERS / SERVER_WORKERS (default 1 / 1: both on a 2-core box)
#        BACKEND                  uring | epoll | auto (default auto)
#        HOLD_CALLS / HOLD_RATE   memory step: calls held at once (default 100000) / start rate
#        SIPSTORM                 the binary (default: cargo build --release, target/release/sipstorm)
# A step passes when every planned attempt (rate x duration) started, every
# one succeeded, and no message was retransmitted. Prints one line per step;
# writes OUTDIR/bench-loopback.txt and one report directory per step.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/$(date -u +%Y-%m-%d)-runtime}
DURATION=${DURATION:-5s}
CALL_RATES=${CALL_RATES:-"5000 10000 20000 30000 40000 50000 60000"}
REG_RATES=${REG_RATES:-"10000 20000 40000 60000 80000 100000"}
CW=${CLIENT_WORKERS:-1}
SW=${SERVER_WORKERS:-1}
BACKEND=${BACKEND:-auto}
PORT=${PORT:-15060}
mkdir -p "$OUT"
if [ -n "${SIPSTORM:-}" ]; then BIN=$SIPSTORM; else
  cargo build --release --bin sipstorm >/dev/null 2>&1 || cargo build --release --bin sipstorm
  BIN=target/release/sipstorm
fi

# A fresh server for every step, so an overloaded step (retransmission
# storms, timers still running) cannot spill into the next one.
SERVE=
start_serve() {
  "$BIN" serve --listen 127.0.0.1:$PORT --workers "$SW" --backend "$BACKEND" --quiet 2>>"$OUT/serve.log" &
  SERVE=$!
  sleep 0.5
}
stop_serve() {
  if [ -n "$SERVE" ]; then kill "$SERVE" 2>/dev/null || true; wait "$SERVE" 2>/dev/null || true; SERVE=; fi
}
trap stop_serve EXIT

LOG="$OUT/bench-loopback.txt"
{
  echo "# bench-loopback $(date -u +%FT%TZ)"
  echo "# host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
  echo "# sipstorm: $("$BIN" --version) ($BIN)"
  echo "# serve --workers $SW; run --workers $CW; backend $BACKEND; $DURATION per step"
  echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$LOG"

step() { # scenario rate -> prints "ok|fail achieved p99 cpu_s rss_kib"
  local scenario=$1 rate=$2 dir="$OUT/loopback-$1-$2"
  rm -rf "$dir"
  start_serve
  "$BIN" run --target 127.0.0.1:$PORT --scenario "$scenario" --rate "$rate" --duration "$DURATION" \
    --workers "$CW" --backend "$BACKEND" --quiet --out "$dir" --drain 5s >/dev/null 2>"$dir.stderr" || true
  stop_serve
  python3 - "$dir/report.json" "$scenario" "$rate" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); s = sys.argv[2]; rate = float(sys.argv[3])
t = r["totals"]["register" if s == "register" else "call"]
failed = t.get("failed", 0) + t.get("timed_out", 0)
planned = rate * r["config"]["duration_s"]
# Sustained = every planned attempt started (the generator kept the
# schedule), every one succeeded, and nothing had to be retransmitted
# (no datagram lost or answered after T1 anywhere on the path).
ok = (t["attempted"] >= 0.99 * planned and failed == 0
      and t.get("succeeded", t.get("completed", 0)) == t["attempted"]
      and r["messages"]["retransmitted"] == 0)
lat = r["rfc6076"]["rrd_ms" if s == "register" else "srd_ms"]
p = r["process"]
print("ok" if ok else "fail", f'{r["rate"]["achieved_per_s"]:.0f}', lat.get("p99"), f'{p["cpu_user_s"]+p["cpu_sys_s"]:.2f}', p["max_rss_kib"], t["attempted"], failed, r["messages"]["retransmitted"])
PY
}

best_call=0; best_reg=0
for scenario in call register; do
  rates=$CALL_RATES; [ "$scenario" = register ] && rates=$REG_RATES
  for rate in $rates; do
    read -r verdict achieved p99 cpu rss attempted failed rtx < <(step "$scenario" "$rate")
    printf '%-9s offered %7s/s  achieved %7s/s  p99 %8s ms  attempted %8s  failed %6s  retransmitted %6s  cpu %6ss  rss %7s KiB  %s\n' \
      "$scenario" "$rate" "$achieved" "$p99" "$attempted" "$failed" "$rtx" "$cpu" "$rss" "$verdict" | tee -a "$LOG"
    [ "$verdict" = ok ] || break
    if [ "$scenario" = call ]; then best_call=$rate; else best_reg=$rate; fi
  done
done
echo "RESULT highest zero-failure call rate: $best_call/s; registration rate: $best_reg/s" | tee -a "$LOG"

# Memory: HOLD_CALLS concurrent calls in hold; `run`'s peak resident memory.
HOLD_CALLS=${HOLD_CALLS:-100000}
if [ "$HOLD_CALLS" -gt 0 ]; then
  dir="$OUT/loopback-hold-$HOLD_CALLS"
  rm -rf "$dir"
  hold_rate=${HOLD_RATE:-10000}
  hold_s=$(( HOLD_CALLS / hold_rate + 5 ))
  start_serve
  "$BIN" run --target 127.0.0.1:$PORT --scenario call --rate "$hold_rate" --count "$HOLD_CALLS" \
    --hold "${hold_s}s" --drain "$(( hold_s + 30 ))s" --workers "$CW" --backend "$BACKEND" --quiet \
    --out "$dir" >/dev/null 2>"$dir.stderr" || true
  stop_serve
  python3 - "$dir/report.json" "$HOLD_CALLS" <<'PY' | tee -a "$LOG"
import json, sys
r = json.load(open(sys.argv[1])); t = r["totals"]["call"]
rss = r["process"]["max_rss_kib"]
print(f'RESULT {sys.argv[2]} calls held {t["established"]} established, {t["completed"]} completed, failed {t["failed"]}: '
      f'run max RSS {rss/1024:.1f} MiB (goal <= 200 MiB)')
PY
fi
