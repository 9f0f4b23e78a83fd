#!/usr/bin/env bash
# Measurement truth (issue 7): a sipstorm run on loopback, captured with
# tshark, and the report checked against the wire.
#
# Usage: scripts/capture-truth.sh SCENARIO [RATE COUNT]
#   SCENARIO  call | register
#   RATE      attempts per second (default 200)
#   COUNT     attempts (default 400)
#
# Starts tshark on `lo` with the capture filter `udp port P` (P a free port),
# waits until it captures, starts `sipstorm serve --listen 127.0.0.1:P`, runs
# `sipstorm run --target 127.0.0.1:P ...`, stops tshark with SIGINT, and has
# scripts/capture-truth.py compare the capture with report.json: message,
# transaction and final-response counts exactly; SRD (call) or RRD
# (register) p50/p90/p99 within the tolerance documented there.
# Exit 0: report agrees with the wire ("PASS: capture truth ..." printed).
# Exit 1: a count mismatch (each printed as "MISMATCH: ...") or a failed step.
# Exit 4: every count agrees but an SRD/RRD percentile is out of tolerance
#   (a burst of load from other processes can do that on a shared machine).
# Exit 77: tshark missing (run scripts/install-test-deps.sh) or not allowed
#   to capture (needs root, or CAP_NET_RAW+CAP_NET_ADMIN on dumpcap).
# Env: SIPSTORM (binary; default target/release/sipstorm, then target/debug),
#   TRUTH_KEEP=DIR copies the pcap, report and logs to DIR,
#   TRUTH_* tolerances (see capture-truth.py), EXTRA_RUN_ARGS (extra `run`
#   flags), EXTRA_SERVE_ARGS (extra `serve` flags, e.g. --busy-ratio 0.2).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
log() { printf 'capture-truth: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

SCENARIO=${1:-}
RATE=${2:-200}
COUNT=${3:-400}
case "$SCENARIO" in
  call | register) ;;
  *) log "usage: $0 call|register [RATE COUNT]"; exit 2 ;;
esac
[[ "$RATE" =~ ^[0-9]+$ && "$COUNT" =~ ^[0-9]+$ && "$COUNT" -gt 0 ]] \
  || { log "RATE and COUNT must be positive integers"; exit 2; }

command -v tshark >/dev/null 2>&1 \
  || { log "tshark not installed: run scripts/install-test-deps.sh"; exit 77; }
command -v python3 >/dev/null 2>&1 || fail "python3 not installed"

SIPSTORM_BIN=""
for c in "${SIPSTORM:-}" "$ROOT/target/release/sipstorm" "$ROOT/target/debug/sipstorm"; do
  if [ -n "$c" ] && [ -x "$c" ]; then SIPSTORM_BIN=$c; break; fi
done
[ -n "$SIPSTORM_BIN" ] || fail "sipstorm binary not found (cargo build --release, or SIPSTORM=...)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/capture-truth.XXXXXX")
TSHARK_PID=""
SERVE_PID=""
RUN_PID=""
# stop PID: SIGINT, then SIGTERM/SIGKILL if it does not go within ~5 s.
stop() {
  local pid=$1 sig=${2:-INT} i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -"$sig" "$pid" 2>/dev/null || true
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -TERM "$pid" 2>/dev/null || true
  sleep 0.5
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  [ -z "${STALL_PID:-}" ] || kill -TERM "$STALL_PID" 2>/dev/null || true
  [ -z "$SERVE_PID" ] || kill -CONT "$SERVE_PID" 2>/dev/null || true
  stop "$RUN_PID" INT
  stop "$SERVE_PID" INT
  stop "$TSHARK_PID" INT
  if [ -n "${TRUTH_KEEP:-}" ]; then
    mkdir -p "$TRUTH_KEEP" && cp -r "$WORK"/. "$TRUTH_KEEP"/ && log "kept $WORK in $TRUTH_KEEP"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free UDP port on 127.0.0.1 (bound and released; serve binds it next).
PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PCAP="$WORK/capture.pcap"

# tshark: pcap (not pcapng) output, a 64 MiB kernel buffer so a burst is not
# dropped, no name resolution. "Capturing on" on stderr means the socket is
# open and the filter installed.
tshark -i lo -f "udp port $PORT" -B 64 -n -F pcap -w "$PCAP" -q >"$WORK/tshark.log" 2>&1 &
TSHARK_PID=$!
# tshark prints "Capturing on" even when the capture then fails for lack of
# permission, so readiness is: that line, the pcap file created, and tshark
# still alive a moment later.
tshark_dead() {
  if grep -Eqi 'permission|not permitted|privilege' "$WORK/tshark.log"; then
    log "tshark cannot capture on lo here (needs root, or CAP_NET_RAW on dumpcap): $(grep -Ei -m1 'permission|not permitted' "$WORK/tshark.log")"
    exit 77
  fi
  fail "tshark exited: $(cat "$WORK/tshark.log")"
}
for _ in $(seq 100); do
  kill -0 "$TSHARK_PID" 2>/dev/null || tshark_dead
  if grep -q "Capturing on" "$WORK/tshark.log" 2>/dev/null && [ -e "$PCAP" ]; then break; fi
  sleep 0.1
done
[ -e "$PCAP" ] || fail "tshark did not start capturing in 10 s: $(cat "$WORK/tshark.log")"
sleep 0.3 # dumpcap creates the file before its first read loop; give it a moment.
kill -0 "$TSHARK_PID" 2>/dev/null || tshark_dead

SERVE_ARGS=(serve --listen "127.0.0.1:$PORT")
RUN_ARGS=(run --target "127.0.0.1:$PORT" --scenario "$SCENARIO" --rate "$RATE" --count "$COUNT"
  --out "$WORK/report" --quiet)
if [ "$SCENARIO" = register ]; then
  last=$(printf '%04d' $((COUNT - 1)))
  [ "$COUNT" -le 10000 ] || fail "register: COUNT <= 10000 (one user per attempt, u0000..u9999)"
  SERVE_ARGS+=(--password-pattern 'pw-{user}')
  RUN_ARGS+=(--user-pattern "u{0000..$last}" --password-pattern 'pw-{user}')
fi
# shellcheck disable=SC2206
RUN_ARGS+=(${EXTRA_RUN_ARGS:-})
# shellcheck disable=SC2206
SERVE_ARGS+=(${EXTRA_SERVE_ARGS:-})

"$SIPSTORM_BIN" "${SERVE_ARGS[@]}" >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
# serve is up when it answers; poll with a bounded wait on the bound socket.
for _ in $(seq 50); do
  if ss -Hlun "sport = :$PORT" 2>/dev/null | grep -q .; then break; fi
  kill -0 "$SERVE_PID" 2>/dev/null || fail "sipstorm serve exited: $(cat "$WORK/serve.log")"
  sleep 0.1
done

log "$SIPSTORM_BIN ${RUN_ARGS[*]}  (serve on 127.0.0.1:$PORT, capture $PCAP)"
run_rc=0
# TRUTH_STALL_MS=N: freeze serve (SIGSTOP) for N ms every 200 ms during the
# run, so the client's timers retransmit (use a short --t1 in
# EXTRA_RUN_ARGS) and serve answers the buffered retransmissions: the
# retransmission counters then have something to be checked against.
STALL_PID=""
if [ -n "${TRUTH_STALL_MS:-}" ]; then
  stall_s=$(python3 -c "print(${TRUTH_STALL_MS} / 1000)")
  (
    trap 'kill -CONT '"$SERVE_PID"' 2>/dev/null; exit 0' TERM
    while kill -STOP "$SERVE_PID" 2>/dev/null; do
      sleep "$stall_s"
      kill -CONT "$SERVE_PID" 2>/dev/null || exit 0
      sleep 0.2
    done
  ) &
  STALL_PID=$!
fi
# In the background, so that a signal to this script runs the trap at once
# (bash defers traps while a foreground child runs) and stops the run too.
"$SIPSTORM_BIN" "${RUN_ARGS[@]}" >"$WORK/run.log" 2>&1 &
RUN_PID=$!
wait "$RUN_PID" || run_rc=$?
RUN_PID=""
if [ -n "$STALL_PID" ]; then
  kill -TERM "$STALL_PID" 2>/dev/null || true
  wait "$STALL_PID" 2>/dev/null || true
  kill -CONT "$SERVE_PID" 2>/dev/null || true
  STALL_PID=""
fi
[ -s "$WORK/report/report.json" ] || fail "no report.json (run exit $run_rc): $(tail -n 20 "$WORK/run.log")"

# Give late datagrams (none expected: run drains before it exits) a moment,
# then stop the capture and the server.
sleep 0.3
stop "$TSHARK_PID" INT
TSHARK_PID=""
stop "$SERVE_PID" INT
SERVE_PID=""
if grep -Eq '[1-9][0-9]* packets? dropped' "$WORK/tshark.log"; then
  fail "tshark dropped packets, the capture is not the truth: $(grep -i dropped "$WORK/tshark.log")"
fi
log "tshark: $(grep -Ei 'packets? captured' "$WORK/tshark.log" | tr -d '\r' || true)"

verdict=0
python3 "$ROOT/scripts/capture-truth.py" "$PCAP" "$WORK/report/report.json" "$SCENARIO" "$PORT" "$COUNT" \
  || verdict=$?
# SPEC exit codes: 0 when every attempt succeeded, 1 when some failed.
want_rc=$(python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["totals"]
bad = sum(t.get(k, {}).get(f, 0) for k in ("call", "register") for f in ("failed", "timed_out"))
print(1 if bad else 0)' "$WORK/report/report.json")
if [ "$run_rc" -ne "$want_rc" ]; then
  log "MISMATCH: sipstorm run exited $run_rc, the report's failures say $want_rc: $(tail -n 5 "$WORK/run.log")"
  [ "$verdict" -ne 0 ] || verdict=1
else
  log "run exit code $run_rc (as the report's failures say)"
fi
if [ "$verdict" -eq 4 ]; then
  log "FAIL: latency percentiles disagree with the wire beyond the tolerance, every count agrees ($SCENARIO, rate $RATE, count $COUNT; load $(cut -d' ' -f1-3 /proc/loadavg))"
  exit 4
elif [ "$verdict" -ne 0 ]; then
  fail "report disagrees with the wire ($SCENARIO, rate $RATE, count $COUNT)"
fi
echo "PASS: capture truth $SCENARIO rate $RATE count $COUNT"
