#!/usr/bin/env bash
# Issue 17's performance check: sipstorm and SIPp running the SAME SIPp XML
# scenario, SIPp's own `uac` (tests/sipp_scenarios/uac.xml, exported with
# `sipp -sd uac`), at the same rates, side by side, against the same targets
# (`sipstorm serve` and `sipp -sn uas`, a fresh one per run). It is
# scripts/bench-side-by-side.sh with SF set (both tools run the file: SIPp
# `-sf uac.xml -d 0`, sipstorm `run --sf uac.xml --hold 0s`), calls only,
# plus the per-core figure the issue asks for:
#
#   calls/s per core = successful calls / generator CPU seconds
#
# (the rate one fully busy core would sustain at that per-call cost). The
# commitment is sipstorm >= 5x SIPp. Generator CPU is each process's own
# (wait4 rusage); the load average goes into machine.txt and per-core.md:
# figures taken while other work runs on the machine need a quiet re-run.
#
# Usage: scripts/bench-sf-vs-sipp.sh [OUTDIR]
#   default OUTDIR results/<UTC date>-sf-vs-sipp. Env as bench-side-by-side.sh;
#   defaults here: RATES="1000 3000 8000", SECS=8, ROUNDS=1, FLOOR=0,
#   CALL_TARGETS="serve sipp", WORKERS=1 (one generator core, like SIPp).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/results/$(date -u +%Y-%m-%d)-sf-vs-sipp}
export SF=${SF:-$ROOT/tests/sipp_scenarios/uac.xml}
export ONLY=calls FLOOR=${FLOOR:-0} WIRE_RATE=${WIRE_RATE:-0}
export RATES=${RATES:-"1000 3000 8000"} SECS=${SECS:-8} ROUNDS=${ROUNDS:-1}
export CALL_TARGETS=${CALL_TARGETS:-"serve sipp"} WORKERS=${WORKERS:-1}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
"$ROOT/scripts/bench-side-by-side.sh" "$OUT"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$OUT" "$load_before" "$load_after" <<'PY'
import json, os, sys
out, before, after = sys.argv[1:4]
runs = json.load(open(os.path.join(out, "runs.json")))["runs"]
rows = {}
for r in runs:
    if r.get("scenario") != "call":
        continue
    ok, cpu = r.get("ok") or 0, r.get("cpu_s") or 0
    key = (r.get("target"), int(r.get("rate", 0)))
    rows.setdefault(key, {})[r.get("tool")] = (
        ok / cpu if cpu > 0 else None, ok, cpu, r.get("failed"), r.get("achieved_per_s"))
lines = [
    "# sipstorm vs SIPp on SIPp's own uac scenario (uac.xml), calls/s per core",
    "",
    f"load average before {before}, after {after} (2-core machine: figures taken "
    "while other work ran need a quiet re-run)",
    "",
    "calls/s per core = successful calls / generator CPU seconds; achieved = successful "
    "calls / the generator's wall time (one SIPp process, one sipstorm worker: each "
    "what one core of the tool delivers at that offered rate)",
    "",
    "| target | offered /s | SIPp calls/s per core | sipstorm calls/s per core | sipstorm / SIPp "
    "| achieved /s SIPp | achieved /s sipstorm | achieved sipstorm / SIPp | failed (SIPp, sipstorm) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---|",
]
for (target, rate), t in sorted(rows.items()):
    s, g = t.get("sipp"), t.get("sipstorm")
    fmt = lambda x: f"{x[0]:,.0f}" if x and x[0] else "-"
    ratio = f"{g[0] / s[0]:.2f}x" if s and g and s[0] and g[0] else "-"
    fails = f"{s[3] if s else '-'}, {g[3] if g else '-'}"
    ach = lambda x: f"{x[4]:,.0f}" if x and x[4] else "-"
    aratio = f"{g[4] / s[4]:.2f}x" if s and g and s[4] and g[4] else "-"
    lines.append(f"| {target} | {rate:,} | {fmt(s)} | {fmt(g)} | {ratio} | {ach(s)} | {ach(g)} | {aratio} | {fails} |")
open(os.path.join(out, "per-core.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
