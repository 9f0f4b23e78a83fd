#!/usr/bin/env bash
# Shared helpers for the interop scripts (scripts/interop-*.sh). Source it:
#   . "$(dirname "$0")/interop-lib.sh"
# It sets ROOT (repo root), SIPP_DIR (scenarios), WORK (a fresh temp dir,
# kept when INTEROP_KEEP=1 or on failure) and a trap that stops every process
# started through these helpers, even when the script fails or is interrupted.
# Everything listens on loopback only (127.0.0.1, and ::1 for the IPv6 cases).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIPP_DIR="$ROOT/scripts/sipp"
export PATH="$PATH:/usr/sbin:/sbin"

_interop_name=$(basename "$0" .sh)
WORK=${INTEROP_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/${_interop_name}.XXXXXX")}
mkdir -p "$WORK"
_interop_pids=()
_interop_kam_dirs=()
_interop_ok=0

log() { printf '[%s %s] %s\n' "$_interop_name" "$(date -u +%H:%M:%S)" "$*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}

# Stop everything we started; keep WORK for inspection unless all went well.
_interop_cleanup() {
  local rc=$?
  set +e
  for p in "${_interop_pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null
    fi
  done
  for d in "${_interop_kam_dirs[@]}"; do
    "$ROOT/scripts/kamailio/stop.sh" "$d" 2>/dev/null
  done
  for p in "${_interop_pids[@]}"; do
    for _ in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  # 77 = "not available here" (nothing ran): nothing worth keeping either.
  if { [ "$rc" -eq 0 ] && [ "$_interop_ok" = 1 ] || [ "$rc" -eq 77 ]; } && [ "${INTEROP_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  else
    log "logs kept in $WORK"
  fi
  exit "$rc"
}
trap _interop_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Mark the run as passed (WORK is then removed unless INTEROP_KEEP=1).
interop_pass() {
  _interop_ok=1
  log "PASS: $*"
}

need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || fail "$c is not installed: run scripts/install-test-deps.sh"
  done
}

# A UDP port on 127.0.0.1 that is free right now: random in 20000..59999,
# not bound in /proc/net/udp (v4 or v6). Tests may run in parallel, so fixed
# ports are avoided.
free_udp_port() {
  local port hex
  for _ in $(seq 1 200); do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    hex=$(printf ':%04X ' "$port")
    if ! grep -qi "$hex" /proc/net/udp /proc/net/udp6 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  fail "no free UDP port found"
}

# sipstorm_bin: the absolute path of the sipstorm binary to test: $SIPSTORM,
# else target/release, else target/debug; fails when there is none.
sipstorm_bin() {
  local c
  for c in "${SIPSTORM:-}" "$ROOT/target/release/sipstorm" "$ROOT/target/debug/sipstorm"; do
    if [ -n "$c" ] && [ -x "$c" ]; then
      echo "$(cd "$(dirname "$c")" && pwd)/$(basename "$c")"
      return 0
    fi
  done
  fail "sipstorm binary not found (cargo build --release)"
}

# A TCP port on 127.0.0.1 free right now (not bound for TCP or UDP).
free_tcp_port() {
  local port hex
  for _ in $(seq 1 200); do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    hex=$(printf ':%04X ' "$port")
    if ! grep -qi "$hex" /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  fail "no free TCP port found"
}

# wait_tcp_listen PORT: until something listens on tcp 127.0.0.1:PORT (10 s).
wait_tcp_listen() {
  local hex
  hex=$(printf '0100007F:%04X' "$1")
  for _ in $(seq 1 100); do
    grep -q " $hex 00000000:0000 0A " /proc/net/tcp 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# start_kamailio NAME PORT: starts Kamailio with its runtime dir WORK/NAME and
# sets KAM_CTL (for kamcmd -s) and KAM_PID. Stopped by the trap.
start_kamailio() {
  local name=$1 port=$2 dir="$WORK/$1" out
  _interop_kam_dirs+=("$dir")
  out=$("$ROOT/scripts/kamailio/start.sh" "$dir" "$port") || fail "kamailio did not start (see $dir/kamailio.log)"
  KAM_CTL=$(printf '%s\n' "$out" | sed -n 's/^KAMAILIO_CTL=//p')
  KAM_PID=$(printf '%s\n' "$out" | sed -n 's/^KAMAILIO_PID=//p')
  KAM_DIR=$dir
}

kamcmd_() { kamcmd -s "$KAM_CTL" "$@"; }

# Kamailio's usrloc statistic NAME (registered_users, location_contacts, ...).
kam_ul_stat() {
  kamcmd_ stats.get_statistics usrloc: 2>/dev/null | sed -n "s/^usrloc:$1 = //p"
}

# kam_check_bindings AORS_FILE [CONTACT_SUFFIX] [--exact]: every AoR of the
# file is in Kamailio's location table (read through the ctl socket), with
# contacts ending in CONTACT_SUFFIX; see scripts/kamailio/check-bindings.py.
kam_check_bindings() {
  python3 "$ROOT/scripts/kamailio/check-bindings.py" "$KAM_CTL" "$@" --save "$WORK/ul.lookup.txt"
}

# CPU seconds (user+sys) used so far by a process and its reaped children
# plus its live children (Kamailio's workers), from /proc.
proc_tree_cpu_s() {
  local pid=$1 total=0 t c
  for t in $pid $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do
    [ -r "/proc/$t/stat" ] || continue
    # fields 14..17: utime stime cutime cstime (clock ticks)
    c=$(awk '{sub(/^.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$t/stat")
    total=$((total + c))
  done
  awk -v t="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

# run_sipp NAME ARGS...: runs SIPp (bounded by a timeout) and waits for it,
# with its statistics in WORK/NAME.stat.csv, errors in WORK/NAME.err.log and
# the screen in WORK/NAME.screen.log. Returns SIPp's exit code
# (0: every call succeeded; 1: some call failed; others: fatal).
# SIPp runs in a background subshell that we `wait` for, so a SIGTERM to the
# script is handled at once (a foreground command would delay the trap until
# SIPp ends); the subshell passes SIGTERM on to `timeout`, which passes it to
# SIPp (and SIGKILLs it 2 s later if needed).
run_sipp() {
  local name=$1
  shift
  local rc=0 t0 t1 pid
  t0=$(date +%s.%N)
  (
    cd "$WORK" || exit 1
    timeout -k 2 "${SIPP_TIMEOUT:-60}" sipp "$@" \
      -nostdin -timeout "${SIPP_TIMEOUT:-60}s" -timeout_error \
      -trace_stat -stf "$WORK/$name.stat.csv" -fd 1 \
      -trace_err -error_file "$WORK/$name.err.log" \
      -trace_screen -screen_file "$WORK/$name.screen.log" \
      >"$WORK/$name.out" 2>&1 &
    cp=$!
    trap 'kill -TERM "$cp" 2>/dev/null' TERM INT
    r=0
    wait "$cp" || r=$?
    while kill -0 "$cp" 2>/dev/null; do r=0; wait "$cp" || r=$?; done
    # `times`: this subshell's reaped children, i.e. SIPp's CPU time.
    times >"$WORK/$name.times"
    exit "$r"
  ) &
  pid=$!
  _interop_pids+=("$pid")
  wait "$pid" || rc=$?
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >"$WORK/$name.wall_s"
  # second line of `times`: children's user and sys time, e.g. "0m1.234s 0m0.5s"
  awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); t += p[1] * 60 + p[2] }; printf "%.2f\n", t }' \
    "$WORK/$name.times" >"$WORK/$name.cpu_s" 2>/dev/null || true
  return "$rc"
}

# start_sipp_bg NAME ARGS...: a SIPp in the background (e.g. a UAS); sets
# BG_PID (the pid of `timeout`, which passes SIGTERM on to SIPp).
start_sipp_bg() {
  local name=$1
  shift
  (cd "$WORK" && exec timeout -k 2 "${SIPP_TIMEOUT:-60}" sipp "$@" \
    -nostdin -timeout "${SIPP_TIMEOUT:-60}s" -timeout_error \
    -trace_stat -stf "$WORK/$name.stat.csv" -fd 1 \
    -trace_err -error_file "$WORK/$name.err.log" \
    -trace_screen -screen_file "$WORK/$name.screen.log" \
    >"$WORK/$name.out" 2>&1) &
  BG_PID=$!
  _interop_pids+=("$BG_PID")
}

# wait_bg PID: waits for a background process and returns its exit code.
wait_bg() {
  local rc=0
  wait "$1" || rc=$?
  return "$rc"
}

# wait_udp_listen PORT [SECONDS] [HOST]: until something is bound to udp
# HOST:PORT, HOST 127.0.0.1 (the default) or ::1.
wait_udp_listen() {
  local port=$1 n=$((${2:-5} * 10)) host=${3:-127.0.0.1} hex table=/proc/net/udp
  if [ "$host" = "::1" ]; then
    hex=$(printf '00000000000000000000000001000000:%04X' "$port")
    table=/proc/net/udp6
  else
    hex=$(printf '0100007F:%04X' "$port")
  fi
  for _ in $(seq 1 "$n"); do
    if grep -q " $hex " "$table" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# sipp_stat NAME COLUMN: the last cumulative value of COLUMN (e.g.
# "SuccessfulCall(C)") in SIPp's statistics file (NA if absent).
sipp_stat() {
  awk -F';' -v col="$2" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
    NF > 1 { v = $c }
    END { print (c && v != "") ? v : "NA" }' "$WORK/$1.stat.csv" 2>/dev/null || echo NA
}

# sipp_summary NAME: "ok=N failed=N retrans=N wall=S rate=R/s" for a SIPp run.
sipp_summary() {
  local name=$1 ok failed retrans wall cpu
  ok=$(sipp_stat "$name" 'SuccessfulCall(C)')
  failed=$(sipp_stat "$name" 'FailedCall(C)')
  retrans=$(sipp_stat "$name" 'Retransmissions(C)')
  wall=$(cat "$WORK/$name.wall_s" 2>/dev/null || echo NA)
  cpu=$(cat "$WORK/$name.cpu_s" 2>/dev/null || echo NA)
  awk -v ok="$ok" -v f="$failed" -v r="$retrans" -v w="$wall" -v c="$cpu" 'BEGIN {
    printf "ok=%s failed=%s retrans=%s", ok, f, r;
    if (w + 0 > 0) printf " wall=%ss rate=%.0f/s sipp_cpu=%ss", w, ok / w, c;
    printf "\n" }'
}

# show_sipp_errors NAME: prints the start of SIPp's error log (on failure).
show_sipp_errors() {
  local name=$1
  if [ -s "$WORK/$name.err.log" ]; then
    log "first errors of $name:"
    head -n 40 "$WORK/$name.err.log" >&2
  fi
  [ -s "$WORK/$name.out" ] && tail -n 5 "$WORK/$name.out" >&2
  return 0
}

# --- optional packet capture (INTEROP_PCAP=1) --------------------------------
# start_capture NAME PORT: when INTEROP_PCAP=1, tshark records loopback UDP
# to/from PORT into WORK/NAME.pcapng (kept with the logs) until stop_capture.
# Needs root or capture rights; a capture that cannot start is only a warning.
CAPTURE_PID=
start_capture() {
  [ "${INTEROP_PCAP:-0}" = 1 ] || return 0
  command -v tshark >/dev/null 2>&1 || { log "INTEROP_PCAP=1 but tshark missing"; return 0; }
  local name=$1 port=$2
  tshark -i lo -f "udp port $port" -w "$WORK/$name.pcapng" -q >"$WORK/$name.tshark.log" 2>&1 &
  CAPTURE_PID=$!
  _interop_pids+=("$CAPTURE_PID")
  for _ in $(seq 1 100); do
    grep -q "Capturing on" "$WORK/$name.tshark.log" 2>/dev/null && { log "capturing udp port $port into $WORK/$name.pcapng"; return 0; }
    kill -0 "$CAPTURE_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "warning: tshark capture did not start: $(tail -n 2 "$WORK/$name.tshark.log" 2>/dev/null)"
  CAPTURE_PID=
}

stop_capture() {
  [ -n "$CAPTURE_PID" ] || return 0
  sleep 0.3
  kill -TERM "$CAPTURE_PID" 2>/dev/null
  wait "$CAPTURE_PID" 2>/dev/null
  CAPTURE_PID=
}

