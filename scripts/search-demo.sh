#!/usr/bin/env bash
# Demonstrates `sipstorm search` (RFC 7502 §4.8) against a target of known
# capacity: `sipstorm serve --max-rate CAP` answers 503 to new attempts beyond
# CAP per second, and the search must find ~CAP.
#
# Usage: scripts/search-demo.sh [CAP] [SCENARIO] [OUT]
#   CAP       target capacity, attempts/s (default 2000)
#   SCENARIO  register | call | options (default register)
#   OUT       search report dir (default results/<date>-search/<scenario>-cap<CAP>)
# Env: SIPSTORM (binary; default target/release/sipstorm, else target/debug),
#      STEP_DURATION (default 5s), PORT (default 15062).
set -euo pipefail
cap=${1:-2000}
scenario=${2:-register}
out=${3:-results/$(date -u +%F)-search/$scenario-cap$cap}
bin=${SIPSTORM:-target/release/sipstorm}
[ -x "$bin" ] || bin=target/debug/sipstorm
port=${PORT:-15062}
"$bin" serve --listen "127.0.0.1:$port" --workers 1 --max-rate "$cap" --quiet 2>/dev/null &
serve=$!
trap 'kill $serve 2>/dev/null || true' EXIT
sleep 0.5
start=$((cap / 4))
"$bin" search --target "127.0.0.1:$port" --scenario "$scenario" \
  --rate "$start" --step 2 --duration "${STEP_DURATION:-5s}" --drain 2s \
  --workers 1 --out "$out" >/dev/null
python3 - "$out" "$cap" <<'PY'
import json, sys
s = json.load(open(sys.argv[1] + "/report.json"))["search"]
cap = float(sys.argv[2])
print(f"capacity {cap:.0f}/s  found {s['max_rate_per_s']}/s  limited_by {s['limited_by']}  steps {len(s['steps'])}  {s['elapsed_s']:.0f} s")
for st in s["steps"]:
    print(f"  {st['rate']:9.1f}/s offered  {st['achieved']:9.1f}/s achieved  failures {st['failures']:5}  {st['verdict']}")
PY
