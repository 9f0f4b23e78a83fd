#!/usr/bin/env bash
# The kernel floor (issue 18): the CPU a minimal program spends per call on
# this machine moving exactly the datagrams of one sipstorm call (same
# sizes, count and loopback peer), batched with recvmmsg/sendmmsg and one
# wake-up per 1 ms tick, and nothing else (benches/floor.rs,
# src/transport/floor.rs). Every efficiency figure is quoted as "× floor".
#
# Usage: scripts/floor.sh [OUTDIR]   (default results/<UTC date>-floor)
# Env:   RATES (default "1000 3000 30000"), SECS per rate (default 10),
#        ROUNDS (default 3; the table shows the median and every round)
# Run it on a quiet machine: the load average before and after each round is
# recorded next to the figures.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/results/$(date -u +%Y-%m-%d)-floor}
RATES=${RATES:-"1000 3000 30000"}
SECS=${SECS:-10}
ROUNDS=${ROUNDS:-3}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
(cd "$ROOT" && cargo bench --bench floor --no-run >/dev/null 2>&1 || cargo bench --bench floor --no-run)
{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo
  echo "kernel: $(uname -srvm)"
  echo "sipstorm: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "rates: $RATES, ${SECS}s each, $ROUNDS rounds"
} >"$OUT/machine.txt"
: >"$OUT/floor.jsonl"
for round in $(seq 1 "$ROUNDS"); do
  for rate in $RATES; do
    before=$(loadavg)
    line=$(cd "$ROOT" && cargo bench -q --bench floor -- --seconds "$SECS" "$rate" 2>/dev/null | grep '^{')
    after=$(loadavg)
    echo "${line%\}}, \"round\": $round, \"load_before\": \"$before\", \"load_after\": \"$after\"}" | tee -a "$OUT/floor.jsonl"
  done
done
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(out + "/floor.jsonl") if l.strip()]
by = {}
for r in rows:
    by.setdefault(int(r["rate"]), []).append(r)
lines = ["| calls/s | client CPU µs per call, median | every round | wake-ups per call | datagrams per call | load before |",
         "|---:|---:|---|---:|---:|---|"]
for rate in sorted(by):
    rs = by[rate]
    v = sorted(r["cpu_us_per_call"] for r in rs)
    lines.append(f"| {rate:,} | {v[len(v)//2]:.1f} | {', '.join(format(r['cpu_us_per_call'], '.1f') for r in rs)} | "
                 f"{sum(r['wakeups'] for r in rs) / max(1, sum(r['calls'] for r in rs)):.2f} | {rs[0]['datagrams_per_call']} | "
                 f"{'; '.join(r['load_before'] for r in rs)} |")
open(out + "/table.md", "w").write("\n".join(lines) + "\n\nCall shape (client datagram -> peer answers, bytes): " + rows[0]["shape"] + "\n")
print("\n".join(lines))
PY
echo "floor: $OUT/table.md" >&2
