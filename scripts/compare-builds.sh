#!/usr/bin/env bash
# Compare two builds of sipstorm on the same load profile and target.
#
#   scripts/compare-builds.sh REV_A REV_B PROFILE [THRESHOLD...]
#
# Builds REV_A and REV_B (any git revisions) in temporary git worktrees,
# runs `sipstorm run --profile PROFILE` with each build against the same
# target, then `sipstorm compare` (REV_A is BASE, REV_B is NEW) with the
# given thresholds, e.g. 'srd.p99<+10%' 'rate.achieved>=-5%' 'call.failed==0'.
#
# Environment:
#   TARGET=HOST:PORT  the server under test. Unset: REV_B's `sipstorm serve`
#                     is started once on 127.0.0.1:$SERVE_PORT and both runs
#                     use it, so only the generator differs.
#   SERVE_PORT        port for that server (default 15060).
#   RUN_ARGS          extra flags for both `sipstorm run` (e.g. "--duration 30s").
#
# Results go to results/<UTC timestamp>-compare-<A>-vs-<B>/: one report
# directory per build plus compare.txt. The exit code is compare's: 0 all
# thresholds held, 1 one failed, 2 usage error; 3 if a build or run broke.
set -euo pipefail

if [ $# -lt 3 ]; then
  sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
REV_A=$1
REV_B=$2
PROFILE=$3
shift 3
THRESHOLD_ARGS=()
for t in "$@"; do THRESHOLD_ARGS+=(--threshold "$t"); done

ROOT=$(git rev-parse --show-toplevel)
cd "$ROOT"
if [ ! -f "$PROFILE" ]; then
  echo "compare-builds: no such profile: $PROFILE" >&2
  exit 2
fi
PROFILE=$(realpath "$PROFILE")
SHA_A=$(git rev-parse --short=12 "$REV_A^{commit}") || { echo "compare-builds: unknown revision $REV_A" >&2; exit 2; }
SHA_B=$(git rev-parse --short=12 "$REV_B^{commit}") || { echo "compare-builds: unknown revision $REV_B" >&2; exit 2; }

STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT="$ROOT/results/${STAMP}-compare-${SHA_A}-vs-${SHA_B}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sipstorm-compare.XXXXXX")
SERVER_PID=""

cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  for label in a b; do
    if [ -d "$WORK/src-$label" ]; then git worktree remove --force "$WORK/src-$label" >/dev/null 2>&1 || true; fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

build() { # label rev sha
  local label=$1 rev=$2 sha=$3
  echo "== building $rev ($sha)" >&2
  git worktree add --detach "$WORK/src-$label" "$rev" >/dev/null
  # One target dir per build: the two revisions never share artifacts.
  (cd "$WORK/src-$label" &&
    SIPSTORM_GIT_SHA=$sha CARGO_TARGET_DIR="$ROOT/target/compare-builds/$label" \
      cargo build --release --bin sipstorm) || exit 3
  cp "$ROOT/target/compare-builds/$label/release/sipstorm" "$WORK/sipstorm-$label"
}

build a "$REV_A" "$SHA_A"
build b "$REV_B" "$SHA_B"
mkdir -p "$OUT"

if [ -z "${TARGET:-}" ]; then
  PORT=${SERVE_PORT:-15060}
  TARGET="127.0.0.1:$PORT"
  echo "== starting $SHA_B's built-in server on $TARGET (both runs use it)" >&2
  "$WORK/sipstorm-b" serve --listen "$TARGET" >"$OUT/serve.log" 2>&1 &
  SERVER_PID=$!
  sleep 1
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "compare-builds: the server did not start, see $OUT/serve.log" >&2; exit 3; }
fi

run() { # label sha
  local label=$1 sha=$2 rc=0
  echo "== running $sha against $TARGET" >&2
  # shellcheck disable=SC2086 # RUN_ARGS is a list of flags
  "$WORK/sipstorm-$label" run --profile "$PROFILE" --target "$TARGET" \
    --out "$OUT/$label-$sha" --quiet ${RUN_ARGS:-} || rc=$?
  # 1 = the run finished but attempts failed: still a report to compare.
  if [ "$rc" -gt 1 ]; then
    echo "compare-builds: run of $sha failed with exit code $rc" >&2
    exit 3
  fi
}

run a "$SHA_A"
run b "$SHA_B"

rc=0
"$WORK/sipstorm-b" compare "$OUT/a-$SHA_A" "$OUT/b-$SHA_B" "${THRESHOLD_ARGS[@]}" \
  | tee "$OUT/compare.txt" || rc=${PIPESTATUS[0]}
echo "== results in ${OUT#"$ROOT"/}" >&2
exit "$rc"
