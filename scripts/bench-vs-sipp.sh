#!/usr/bin/env bash
# UAC CPU seconds per call: sipstorm vs SIPp, same `sipp -sn uas` target, same
# offered rate, side by side in one run.
#
# Usage: scripts/bench-vs-sipp.sh [OUTDIR]
# Env:   RATE (default 3000 calls/s), CALLS (default 30000), WORKERS (sipstorm, default 1)
# Needs SIPp (Debian package sip-tester); installs it when missing and root.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/$(date -u +%Y-%m-%d)-runtime}
RATE=${RATE:-3000}
CALLS=${CALLS:-30000}
WORKERS=${WORKERS:-1}
UAS_PORT=${UAS_PORT:-15070}
mkdir -p "$OUT"
if ! command -v sipp >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq sip-tester >/dev/null; else
    echo "sipp not found: apt-get install sip-tester" >&2; exit 2; fi
fi
cargo build --release --bin sipstorm >/dev/null 2>&1 || cargo build --release --bin sipstorm
BIN=target/release/sipstorm

# Child CPU time (user+sys seconds) of one command, via getrusage(RUSAGE_CHILDREN).
cpu_of() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{r.ru_utime + r.ru_stime:.3f} {p.returncode}")
PY
}

sipp -sn uas -i 127.0.0.1 -p "$UAS_PORT" -nostdin >/dev/null 2>"$OUT/sipp-uas.log" &
UAS=$!
trap 'kill $UAS 2>/dev/null || true; wait $UAS 2>/dev/null || true' EXIT
sleep 0.5

SECS=$(python3 -c "print(max(1, round($CALLS / $RATE)))")
DIR="$OUT/vs-sipp-sipstorm"
rm -rf "$DIR"
read -r ss_cpu ss_rc < <(cpu_of "$BIN" run --target 127.0.0.1:$UAS_PORT --scenario call --rate "$RATE" \
  --count "$CALLS" --duration "$((SECS + 5))s" --workers "$WORKERS" --quiet --out "$DIR")
ss_calls=$(python3 -c "import json;print(json.load(open('$DIR/report.json'))['totals']['call']['completed'])")

read -r sp_cpu sp_rc < <(cpu_of sipp -sn uac 127.0.0.1:$UAS_PORT -i 127.0.0.1 -p $((UAS_PORT + 1)) \
  -r "$RATE" -m "$CALLS" -d 0 -nostdin -timeout "$((SECS + 30))s" \
  -trace_stat -stf "$OUT/vs-sipp-sipp-stats.csv")
sp_calls=$(python3 - "$OUT/vs-sipp-sipp-stats.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';'))
h = rows[0]; last = rows[-1]
print(last[h.index("SuccessfulCall(C)")])
PY
)
python3 - "$ss_cpu" "$ss_calls" "$sp_cpu" "$sp_calls" "$RATE" <<'PY' | tee "$OUT/bench-vs-sipp.txt"
import sys
ss_cpu, ss_calls, sp_cpu, sp_calls, rate = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
a = ss_cpu / max(ss_calls, 1) * 1e6
b = sp_cpu / max(sp_calls, 1) * 1e6
print(f"offered {rate} calls/s against sipp -sn uas")
print(f"sipstorm: {ss_calls} calls, {ss_cpu:.2f} CPU s, {a:.1f} us CPU/call")
print(f"SIPp uac: {sp_calls} calls, {sp_cpu:.2f} CPU s, {b:.1f} us CPU/call")
print(f"RESULT sipstorm/SIPp CPU per call = {a / b:.3f} (goal <= 0.2)" if b > 0 else "RESULT SIPp completed no call")
PY
