#!/usr/bin/env bash
# What each of issue 18's efficiency changes buys: sipstorm's CPU per call
# and context switches per call against the same `sipp -sn uas`, at the same
# rates, with one change undone at a time, the variants rotated each round
# (round-robin, reversed every other round) so drift hits them all alike.
#
#   default       the current defaults
#   workers-2     --workers 2 (one per core, the pre-issue-18 default)
#   wake-each     SIPSTORM_WAKE_ON_RECEIVE=1 (every datagram ends the wait)
#   no-defer      SIPSTORM_NO_DEFER_TASKRUN=1 (ring without DEFER_TASKRUN)
#
# Usage: scripts/bench-wakeups.sh [OUTDIR]  (default results/<date>-wakeups)
# Env:   RATES (default "1000 3000 8000"), SECS (default 10), ROUNDS (2),
#        SIPSTORM (binary; default: cargo build --release)
# Measured per run with wait4(): user+sys CPU of the generator and its
# voluntary context switches, per completed call; plus sipstorm's own exact
# CPU (report process.cpu_total_s) and answer p50. Loopback only.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/results/$(date -u +%Y-%m-%d)-wakeups}
RATES=${RATES:-"1000 3000 8000"}
SECS=${SECS:-10}
ROUNDS=${ROUNDS:-2}
mkdir -p "$OUT/raw"
OUT=$(cd "$OUT" && pwd)
export INTEROP_WORK="$OUT/raw" INTEROP_KEEP=1
. "$ROOT/scripts/interop-lib.sh"
if [ -n "${SIPSTORM:-}" ]; then BIN=$SIPSTORM; else
  (cd "$ROOT" && cargo build -q --release --bin sipstorm)
  BIN=$ROOT/target/release/sipstorm
fi
command -v sipp >/dev/null || fail "sipp missing: scripts/install-test-deps.sh"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
variants=(default workers-2 wake-each no-defer)
{
  echo "date_utc: $(date -u +%FT%TZ)"; echo "nproc: $(nproc)"; grep -m1 'model name' /proc/cpuinfo
  echo "kernel: $(uname -srvm)"; echo "sipstorm: $("$BIN" --version)"
  echo "rates: $RATES, ${SECS}s, $ROUNDS rounds; load before: $(loadavg)"
} >"$OUT/machine.txt"
run_one() { # variant rate round
  local v=$1 rate=$2 dir="$OUT/raw/r$3-$1-$2" port uas extra=() envs=()
  rm -rf "$dir" && mkdir -p "$dir"
  case "$v" in
    workers-2) extra=(--workers 2) ;;
    wake-each) envs=(SIPSTORM_WAKE_ON_RECEIVE=1) ;;
    no-defer) envs=(SIPSTORM_NO_DEFER_TASKRUN=1) ;;
  esac
  port=$(free_udp_port)
  (cd "$dir" && exec sipp -sn uas -i 127.0.0.1 -p "$port" -nostdin -timeout "$((SECS + 60))s" >"$dir/uas.out" 2>&1) &
  uas=$!
  _interop_pids+=("$uas")
  wait_udp_listen "$port" || fail "sipp -sn uas did not start"
  echo "{\"load_before\": \"$(loadavg)\"}" >"$dir/load.json"
  log "round $3: $v at $rate/s (load $(loadavg))"
  python3 - "$dir" env "${envs[@]}" "$BIN" run --target "127.0.0.1:$port" --scenario call --rate "$rate" \
    --count "$((rate * SECS))" --duration "$((SECS + 5))s" --local-ip 127.0.0.1 "${extra[@]}" --quiet --out "$dir/report" <<'PY'
import json, os, subprocess, sys, time
d, cmd = sys.argv[1], sys.argv[2:]
t0 = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(d + "/stderr", "w"))
_, status, ru = os.wait4(p.pid, 0)
json.dump({"rc": os.waitstatus_to_exitcode(status), "wall_s": time.monotonic() - t0,
           "cpu_s": ru.ru_utime + ru.ru_stime, "nvcsw": ru.ru_nvcsw, "nivcsw": ru.ru_nivcsw},
          open(d + "/gen.json", "w"))
PY
  kill -TERM "$uas" 2>/dev/null || true
  wait "$uas" 2>/dev/null || true
}
for round in $(seq 1 "$ROUNDS"); do
  order=("${variants[@]}")
  if [ $((round % 2)) = 0 ]; then order=($(printf '%s\n' "${variants[@]}" | tac)); fi
  for rate in $RATES; do for v in "${order[@]}"; do run_one "$v" "$rate" "$round"; done; done
done
python3 - "$OUT" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
rows = {}
for d in sorted(glob.glob(os.path.join(out, "raw", "r*-*-*"))):
    name = os.path.basename(d)
    rnd, rest = name.split("-", 1)
    v, rate = rest.rsplit("-", 1)
    g = json.load(open(os.path.join(d, "gen.json")))
    rep = json.load(open(os.path.join(d, "report", "report.json")))
    ok = rep["totals"]["call"]["completed"]
    load = json.load(open(os.path.join(d, "load.json")))["load_before"]
    rows.setdefault((int(rate), v), []).append(dict(
        cpu_us=g["cpu_s"] / ok * 1e6 if ok else None, csw=g["nvcsw"] / ok if ok else None,
        exact_us=rep["process"].get("cpu_total_s", 0) / ok * 1e6 if ok else None, ok=ok,
        failed=rep["totals"]["call"]["failed"], workers=rep["config"].get("workers"),
        p50=rep["latency_ms"]["answer"]["p50"], load=load))
lines = ["| calls/s | variant | workers | ok (failed) | CPU µs per call, median (rounds) | ÷ default | voluntary ctx switches per call | answer p50 ms | load before |",
         "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
med = lambda rs, k: statistics.median([r[k] for r in rs if r[k] is not None]) if any(r[k] is not None for r in rs) else None
for (rate, v) in sorted(rows, key=lambda k: (k[0], ["default", "workers-2", "wake-each", "no-defer"].index(k[1]))):
    rs = rows[(rate, v)]
    base = med(rows.get((rate, "default"), []), "cpu_us")
    c = med(rs, "cpu_us")
    lines.append(f"| {rate:,} | {v} | {rs[0]['workers']} | {sum(r['ok'] for r in rs):,} ({sum(r['failed'] for r in rs)}) | "
                 f"{c:.1f} ({', '.join(format(r['cpu_us'], '.1f') for r in rs)}) | "
                 f"{c / base:.2f} | {med(rs, 'csw'):.2f} | {med(rs, 'p50'):.3f} | {'; '.join(r['load'] for r in rs)} |")
open(os.path.join(out, "table.md"), "w").write(open(os.path.join(out, "machine.txt")).read() + "\n" + "\n".join(lines) + "\n")
print("\n".join(lines))
PY
log "done: $OUT/table.md"
