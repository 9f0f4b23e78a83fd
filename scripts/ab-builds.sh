#!/usr/bin/env bash
# A/B of two revisions on this machine, interleaved (ABBA, ROUNDS times):
# the sans-IO engine bench (criterion, `engine/call` and `engine/register`
# calls/s on one core) and scripts/bench-loopback.sh (highest zero-failure
# call and registration rates of `run` against `serve`). Used to show a
# refactoring changed no speed (issue 12) and what an efficiency change buys.
#
#   scripts/ab-builds.sh REV_A REV_B [OUTDIR]
#
# Env: ROUNDS (default 2: A B B A A B B A), LOOPBACK=0 / ENGINE=0 to skip the
#      loopback / engine part, plus bench-loopback.sh's own (CALL_RATES, REG_RATES, DURATION,
#      HOLD_CALLS defaults to 0 here). AB_WORKDIR=DIR keeps the two builds
#      in DIR (reused by the next run), and BUILD_ONLY=1 stops after
#      building: build while the machine is busy, measure once it is quiet.
# Writes OUTDIR/{engine,loopback}-<round>-<A|B>.txt and OUTDIR/table.md with
# the medians; the load average is recorded before every run. Run it alone on
# the machine (no builds beside it).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REV_A=$1 REV_B=$2
OUT=${3:-$ROOT/results/$(date -u +%Y-%m-%d)-ab-$(git -C "$ROOT" rev-parse --short "$REV_A")-$(git -C "$ROOT" rev-parse --short "$REV_B")}
ROUNDS=${ROUNDS:-2}
LOOPBACK=${LOOPBACK:-1}
ENGINE=${ENGINE:-1}
export HOLD_CALLS=${HOLD_CALLS:-0}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ -n "${AB_WORKDIR:-}" ]; then
  WT=$AB_WORKDIR
  mkdir -p "$WT"
else
  WT=$(mktemp -d /tmp/sipstorm-ab.XXXXXX)
  cleanup() {
    for x in A B; do git -C "$ROOT" worktree remove --force "$WT/$x" 2>/dev/null || true; done
    rm -rf "$WT"
  }
  trap cleanup EXIT
fi
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
for x in A B; do
  rev=REV_$x
  if [ -d "$WT/$x" ]; then
    git -C "$WT/$x" checkout -q --detach "${!rev}"
  else
    git -C "$ROOT" worktree add -q --detach "$WT/$x" "${!rev}"
  fi
  echo "building $x = ${!rev}" >&2
  (cd "$WT/$x" && cargo build -q --release --bin sipstorm && cargo bench -q --bench engine --no-run 2>/dev/null)
done
if [ "${BUILD_ONLY:-0}" = 1 ]; then
  echo "ab-builds: built in $WT (BUILD_ONLY=1)" >&2
  rmdir "$OUT" 2>/dev/null || true
  exit 0
fi
{
  echo "A: $REV_A ($(git -C "$ROOT" rev-parse --short "$REV_A"))"
  echo "B: $REV_B ($(git -C "$ROOT" rev-parse --short "$REV_B"))"
  echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
  echo "date: $(date -u +%FT%TZ)"
} >"$OUT/machine.txt"
order=()
for _ in $(seq 1 "$ROUNDS"); do order+=(A B B A); done
n=0
for x in "${order[@]}"; do
  n=$((n + 1))
  echo "run $n: $x (load $(loadavg))" >&2
  if [ "$ENGINE" = 1 ]; then
    { echo "# load before: $(loadavg)"
      (cd "$WT/$x" && cargo bench -q --bench engine -- --noplot 'engine/' 2>&1) | grep -E '^engine/|time:|thrpt:'
    } >"$OUT/engine-$n-$x.txt"
  fi
  if [ "$LOOPBACK" = 1 ]; then
    echo "# load before: $(loadavg)" >"$OUT/loopback-$n-$x.load"
    (cd "$WT/$x" && SIPSTORM="$WT/$x/target/release/sipstorm" scripts/bench-loopback.sh "$OUT/loopback-$n-$x" >/dev/null 2>&1) || true
    cp "$OUT/loopback-$n-$x/bench-loopback.txt" "$OUT/loopback-$n-$x.txt" 2>/dev/null || true
  fi
done
python3 - "$OUT" <<'PY'
import glob, os, re, statistics, sys
out = sys.argv[1]
def thrpt(path):
    """engine bench name -> median throughput (elements/s) of one run."""
    res, name = {}, None
    for line in open(path):
        m = re.match(r"^(engine/\S+)", line)
        if m:
            name = m.group(1)
        m = re.search(r"thrpt:\s*\[\S+ \S+ (\S+) (\S+)", line)
        if m and name:
            v, unit = float(m.group(1)), m.group(2)
            res[name] = v * {"elem/s": 1, "Kelem/s": 1e3, "Melem/s": 1e6}.get(unit, 1)
    return res
def loop(path):
    m = re.search(r"call rate: (\d+)/s; registration rate: (\d+)/s", open(path).read()) if os.path.exists(path) else None
    return (int(m.group(1)), int(m.group(2))) if m else None
rows = {"A": {}, "B": {}}
for path in sorted(glob.glob(os.path.join(out, "engine-*-*.txt"))):
    x = path.rsplit("-", 1)[1][0]
    for k, v in thrpt(path).items():
        rows[x].setdefault(k, []).append(v)
for path in sorted(glob.glob(os.path.join(out, "loopback-*-*.txt"))):
    x = path.rsplit("-", 1)[1][0]
    r = loop(path)
    if r:
        rows[x].setdefault("loopback calls/s", []).append(r[0])
        rows[x].setdefault("loopback registrations/s", []).append(r[1])
lines = ["| measure | A median | B median | B ÷ A | A runs | B runs |", "|---|---:|---:|---:|---|---|"]
for k in sorted(set(rows["A"]) | set(rows["B"])):
    a, b = rows["A"].get(k, []), rows["B"].get(k, [])
    ma = statistics.median(a) if a else None
    mb = statistics.median(b) if b else None
    ratio = f"{mb / ma:.3f}" if ma and mb else "–"
    fmt = lambda v: f"{v:,.0f}"
    lines.append(f"| {k} | {fmt(ma) if ma else '–'} | {fmt(mb) if mb else '–'} | {ratio} | {', '.join(map(fmt, a))} | {', '.join(map(fmt, b))} |")
open(os.path.join(out, "table.md"), "w").write(open(os.path.join(out, "machine.txt")).read() + "\n" + "\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "ab-builds: $OUT/table.md" >&2
