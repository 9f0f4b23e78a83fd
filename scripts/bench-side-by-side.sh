#!/usr/bin/env bash
# sipstorm vs SIPp, side by side: the same targets, the same offered rates, in
# one run, the two tools alternating at each rate (ABBA order: sipstorm first
# at the 1st, 3rd, ... rate, SIPp first at the others), and the kernel floor
# (benches/floor.rs: the CPU a minimal program spends moving one call's
# datagrams) at every call rate.
#
#   calls     INVITE/200/ACK/BYE against `sipp -sn uas` and against
#             `sipstorm serve --workers 1` (a fresh target per run);
#             SIPp as `sipp -sn uac -d 0`, sipstorm as `run --scenario call`.
#   register  REGISTER with MD5 digest (401, then 200) against the project's
#             Kamailio registrar (scripts/kamailio/) and against `sipstorm
#             serve` (a fresh target per run), the 2000 users of
#             scripts/sipp/users.csv for both tools: SIPp with
#             scripts/sipp/register.xml, sipstorm with --users on the same file.
#
# Each run offers RATE/s for SECS seconds: RATE*SECS attempts, bounded by count
# AND by time (sipstorm --duration SECS+5s, SIPp -timeout SECS+30s, and a hard
# kill at SECS+90s). sipstorm runs with its default flags (it starts the
# workers the rate needs); WORKERS=N forces --workers N. Everything is on
# 127.0.0.1; every process is stopped at the end, also on failure or Ctrl-C
# (the trap of scripts/interop-lib.sh).
#
# Measured per run, the same way for both tools:
#   CPU     user+sys of the generator process alone (wait4 rusage), per success
#   RSS     its peak resident set (ru_maxrss of the same wait4)
#   rate    successes / the generator's wall time (process start to exit)
#   failed  attempts offered but not successful (RATE*SECS - successes)
#   latency each tool's own measurement of the same interval:
#           calls:    INVITE sent -> 200 OK received (sipstorm latency_ms.answer;
#                     SIPp RTD of the built-in uac scenario, rtd on the 200)
#           register: first REGISTER sent -> final 200, the 401 round trip
#                     included (sipstorm RFC 6076 RRD; SIPp RTD of register.xml)
#           SIPp's samples come from -trace_rtt (every sample, integer ms on
#           SIPp's clock tick); sipstorm's from its HDR histogram (µs).
#   also    retransmissions, voluntary context switches (wait4), UDP receive-
#           buffer drops (target socket and machine), the target's CPU per
#           success (/proc), the load average; table.md explains the columns
#
# Usage: scripts/bench-side-by-side.sh [OUTDIR]
#   default OUTDIR results/<UTC date>-side-by-side; raw outputs in OUTDIR/raw,
#   the table in OUTDIR/table.md, all numbers in OUTDIR/runs.json, the machine
#   in OUTDIR/machine.txt.
# Env:
#   RATES       call rates (default "1000 3000 8000")
#   REG_RATES   registration rates (default "1000 5000", or RATES when set)
#   CALL_TARGETS  targets of the call runs (default "sipp serve")
#   REG_TARGETS   targets of the registrations (default "kamailio serve")
#   FLOOR       1 (default): run the kernel floor at every call rate, each round
#   SECS        seconds per run (default 10); the default run takes ~5 min
#   ROUNDS      how many times the whole sequence runs (default 2)
#   ONLY        calls | register | both (default both)
#   WIRE_RATE   call rate of the wire check (default 500; 0: none): one more
#               captured call run per tool after the rounds, comparing each
#               tool's INVITE->200 with tshark's timestamps of the same packets
#   WORKERS     sipstorm --workers (default: none, sipstorm's own choice)
#   SERVE_WORKERS  workers of the `sipstorm serve` target (default 1)
#   SIPP_BUFF   SIPp's -buff_size for UAC and UAS (default 8 MiB, what sipstorm
#               asks for its sockets; the kernel caps both at net.core.rmem_max
#               unless SO_RCVBUFFORCE works, which sipstorm tries first)
#   KAMAILIO_CHILDREN  Kamailio UDP workers (default 4)
#   SIPSTORM_FLAGS  extra `sipstorm run` flags, e.g. "--batch-window 1ms"
#   SIPSTORM_OLD  another sipstorm build (e.g. one of scripts/ab-builds.sh's),
#               run as a third tool, "sipstorm-old", in the same rotation with
#               the same flags: what a change bought, side by side
#   TOOLS       the generators (default "sipstorm sipp", plus sipstorm-old when
#               SIPSTORM_OLD is set); e.g. TOOLS=sipstorm RATES=30000
#               CALL_TARGETS=serve for rates SIPp cannot offer
#   SF          a SIPp scenario file for the call runs of BOTH tools (issue
#               17: `sipp -sf SF -d 0` and `sipstorm run --sf SF --hold 0s`
#               instead of `-sn uac` and `--scenario call`); see
#               scripts/bench-sf-vs-sipp.sh
#   SIPSTORM    sipstorm binary (default: cargo build --release, then
#               $CARGO_TARGET_DIR/release/sipstorm or target/release/sipstorm)
# Needs sipp, kamailio, kamcmd, python3; installs them (scripts/install-test-
# deps.sh) when missing and run as root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$PATH:/usr/sbin:/sbin"

OUT=${1:-$ROOT/results/$(date -u +%Y-%m-%d)-side-by-side}
SECS=${SECS:-10}
if [ -n "${RATES:-}" ]; then REG_RATES=${REG_RATES:-$RATES}; else REG_RATES=${REG_RATES:-"1000 5000"}; fi
RATES=${RATES:-"1000 3000 8000"}
CALL_TARGETS=${CALL_TARGETS:-"sipp serve"}
REG_TARGETS=${REG_TARGETS:-"kamailio serve"}
FLOOR=${FLOOR:-1}
SERVE_WORKERS=${SERVE_WORKERS:-1}
ONLY=${ONLY:-both}
ROUNDS=${ROUNDS:-2}
WIRE_RATE=${WIRE_RATE:-500}
CAPTURE=0
WORKERS=${WORKERS:-}
TOOLS=${TOOLS:-"sipstorm sipp${SIPSTORM_OLD:+ sipstorm-old}"}
for t in $TOOLS; do
  case "$t" in sipstorm | sipp) ;; sipstorm-old) [ -x "${SIPSTORM_OLD:-}" ] || { echo "TOOLS has sipstorm-old: set SIPSTORM_OLD to a sipstorm binary" >&2; exit 2; } ;;
    *) echo "TOOLS: unknown tool '$t' (sipstorm, sipp, sipstorm-old)" >&2; exit 2 ;; esac
done
SIPP_BUFF=${SIPP_BUFF:-8388608}
export KAMAILIO_CHILDREN=${KAMAILIO_CHILDREN:-4}
case "$ONLY" in calls | register | both) ;; *) echo "ONLY must be calls, register or both" >&2; exit 2 ;; esac

missing=0
for c in sipp kamailio kamcmd python3; do command -v "$c" >/dev/null 2>&1 || missing=1; done
if [ "$missing" = 1 ]; then
  if [ "$(id -u)" = 0 ]; then "$ROOT/scripts/install-test-deps.sh"; else
    echo "sipp/kamailio missing: run scripts/install-test-deps.sh as root" >&2; exit 2; fi
fi

mkdir -p "$OUT/raw"
OUT=$(cd "$OUT" && pwd)
# interop-lib: free ports, Kamailio start/stop, /proc CPU, and the trap that
# stops every process registered in _interop_pids / started by start_kamailio.
export INTEROP_WORK="$OUT/raw" INTEROP_KEEP=1
. "$ROOT/scripts/interop-lib.sh"

if [ -n "${SIPSTORM:-}" ]; then BIN=$SIPSTORM; else
  (cd "$ROOT" && { cargo build --release --bin sipstorm >/dev/null 2>&1 || cargo build --release --bin sipstorm; })
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/sipstorm
fi
if [ "$FLOOR" = 1 ]; then
  (cd "$ROOT" && cargo bench --bench floor --no-run >/dev/null 2>&1 || cargo bench --bench floor --no-run)
fi
[ -x "$BIN" ] || fail "no sipstorm binary at $BIN"

# Runs one command and records what the kernel accounted to that process
# alone: wait4() rusage (user, sys, max RSS, context switches) and wall time,
# in NAME.json; stdout/stderr in NAME.stdout/.stderr. After TIMEOUT seconds,
# or on SIGTERM/SIGINT to the runner, the command gets SIGTERM, 2 s later a
# second SIGTERM (sipstorm: stop draining at once), 1 s later SIGKILL; and it
# gets SIGKILL if the runner itself dies (PR_SET_PDEATHSIG).
# argv: NAME TIMEOUT CWD CMD...
RUNNER_PY='
import ctypes, json, os, signal, subprocess, sys, time
name, limit, cwd, cmd = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4:]
libc = ctypes.CDLL(None, use_errno=True)
def die_with_runner():
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
with open(name + ".stdout", "wb") as so, open(name + ".stderr", "wb") as se:
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=so, stderr=se,
                         preexec_fn=die_with_runner)
state = {"stage": 0, "timed_out": False}
def send(sig):
    try:
        os.kill(p.pid, sig)
    except ProcessLookupError:
        pass
def escalate(sig, _frame):
    if sig == signal.SIGALRM and state["stage"] == 0:
        state["timed_out"] = True
    stage = state["stage"]
    state["stage"] += 1
    if stage == 0:
        send(signal.SIGTERM)
        signal.alarm(2)
    elif stage == 1:
        send(signal.SIGTERM)
        signal.alarm(1)
    else:
        send(signal.SIGKILL)
for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
    signal.signal(s, escalate)
signal.alarm(max(1, int(limit)))
_, status, ru = os.wait4(p.pid, 0)
wall = time.monotonic() - t0
signal.alarm(0)
p.returncode = os.waitstatus_to_exitcode(status)
json.dump({"cmd": cmd, "rc": p.returncode, "timed_out": state["timed_out"], "wall_s": wall,
           "user_s": ru.ru_utime, "sys_s": ru.ru_stime, "cpu_s": ru.ru_utime + ru.ru_stime,
           "maxrss_kib": ru.ru_maxrss, "nvcsw": ru.ru_nvcsw, "nivcsw": ru.ru_nivcsw},
          open(name + ".json", "w"), indent=1)
'
measure() {
  local pid rc=0
  python3 -c "$RUNNER_PY" "$@" &
  pid=$!
  _interop_pids+=("$pid")
  wait "$pid" || rc=$?
  [ "$rc" = 0 ] || log "runner exit $rc for $1"
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# UDP datagrams the kernel dropped for a full receive buffer: on the whole
# machine (RcvbufErrors; other work counts too), and on the socket bound to
# 127.0.0.1:PORT (the target's; last column of /proc/net/udp).
udp_drops_all() { awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 } else print $c }' /proc/net/snmp; }
udp_drops_port() { awk -v a="$(printf '0100007F:%04X' "$1")" '$2 == a { d += $NF } END { print d + 0 }' /proc/net/udp; }

# SIPp's -trace_rtt writes its samples every -rtt_freq calls and drops the
# remainder at exit: a frequency that divides the count keeps them all.
rtt_freq() {
  local n=$1 f
  for f in $(seq 200 -1 1); do [ $((n % f)) = 0 ] && { echo "$f"; return; }; done
}

# meta DIR KEY=VALUE...: the run's settings, for the summary; seq = run order.
SEQ=0
meta() {
  local dir=$1
  shift
  SEQ=$((SEQ + 1))
  python3 -c 'import json, sys
d = dict(a.split("=", 1) for a in sys.argv[2:])
json.dump(d, open(sys.argv[1] + "/meta.json", "w"), indent=1)' "$dir" seq="$SEQ" "$@"
}

# One generator run; DIR, N, RATE, TARGET_PORT set by the caller.
# gen TOOL SCENARIO
gen() {
  local tool=$1 scenario=$2 cport
  # The generator's binary (the target, started before, is always $BIN).
  local BIN=$BIN
  [ "$tool" = sipstorm-old ] && BIN=$SIPSTORM_OLD
  if [ "$tool" != sipp ]; then
    local extra=()
    [ "$scenario" = register ] && extra=(--users "$SIPP_DIR/users.csv")
    [ -n "$WORKERS" ] && extra+=(--workers "$WORKERS")
    local what=(--scenario "$scenario")
    [ "$scenario" = call ] && [ -n "${SF:-}" ] && what=(--sf "$SF" --hold 0s)
    measure "$DIR/gen" $((SECS + 90)) "$DIR" "$BIN" run --target "127.0.0.1:$TARGET_PORT" \
      "${what[@]}" --rate "$RATE" --count "$N" --duration "$((SECS + 5))s" \
      --local-ip 127.0.0.1 "${extra[@]}" ${SIPSTORM_FLAGS:-} --quiet --out "$DIR/sipstorm"
  else
    local sc=(-sn uac -d 0)
    [ -n "${SF:-}" ] && sc=(-sf "$SF" -d 0)
    [ "$scenario" = register ] && sc=(-sf "$SIPP_DIR/register.xml" -inf "$SIPP_DIR/users.csv")
    cport=$(free_udp_port)
    measure "$DIR/gen" $((SECS + 90)) "$DIR" sipp "127.0.0.1:$TARGET_PORT" "${sc[@]}" \
      -i 127.0.0.1 -p "$cport" -r "$RATE" -m "$N" -nostdin -timeout "$((SECS + 30))s" -buff_size "$SIPP_BUFF" \
      -trace_stat -stf "$DIR/sipp.stat.csv" -fd 1 -trace_rtt -rtt_freq "$(rtt_freq "$N")" \
      -trace_err -error_file "$DIR/sipp.err.log"
  fi
}

# The built-in target on TARGET_PORT, pinned to the last core, its pid in
# SERVE_PID; output in DIR/serve.out.
start_serve() {
  (cd "$DIR" && exec "$BIN" serve --listen "127.0.0.1:$TARGET_PORT" --workers "$SERVE_WORKERS" \
    --password-pattern 'pw-{user}' --quiet >"$DIR/serve.out" 2>&1) &
  SERVE_PID=$!
  _interop_pids+=("$SERVE_PID")
  wait_udp_listen "$TARGET_PORT" || fail "sipstorm serve did not start (see $DIR/serve.out)"
}

bench_call() {
  local tool=$1 target=$3 uas u0 u1 l0 d0 d1 td tname
  RATE=$2 N=$(($2 * SECS)) DIR="$OUT/raw/r$ROUND-call-$target-$2-$1"
  [ "$CAPTURE" = 1 ] && DIR="$OUT/raw/wire-call-$target-$2-$1"
  rm -rf "$DIR" && mkdir -p "$DIR"
  TARGET_PORT=$(free_udp_port)
  if [ "$target" = serve ]; then
    start_serve
    uas=$SERVE_PID tname="sipstorm serve --workers $SERVE_WORKERS"
  else
    (cd "$DIR" && exec sipp -sn uas -i 127.0.0.1 -p "$TARGET_PORT" -nostdin -timeout "$((SECS + 120))s" -buff_size "$SIPP_BUFF" \
      -trace_stat -stf "$DIR/uas.stat.csv" -fd 1 >"$DIR/uas.out" 2>&1) &
    uas=$! tname="sipp -sn uas"
    _interop_pids+=("$uas")
    wait_udp_listen "$TARGET_PORT" || fail "sipp -sn uas did not start (see $DIR/uas.out)"
  fi
  l0=$(loadavg)
  u0=$(proc_tree_cpu_s "$uas")
  d0=$(udp_drops_all)
  log "round $ROUND, call $RATE/s x ${SECS}s against $target: $tool (load $l0)"
  INTEROP_PCAP=$CAPTURE start_capture "${DIR#"$WORK"/}/wire" "$TARGET_PORT"
  gen "$tool" call
  stop_capture
  u1=$(proc_tree_cpu_s "$uas")
  d1=$(udp_drops_all)
  td=$(udp_drops_port "$TARGET_PORT")
  kill -TERM "$uas" 2>/dev/null || true
  wait "$uas" 2>/dev/null || true
  meta "$DIR" round="$ROUND" scenario=call tool="$tool" target_port="$TARGET_PORT" rate="$RATE" count="$N" secs="$SECS" workers="${WORKERS:-default}" \
    target_kind="$target" target="$tname" target_cpu_s="$(awk -v a="$u0" -v b="$u1" 'BEGIN { print b - a }')" \
    load_before="$l0" load_after="$(loadavg)" udp_drops_machine=$((d1 - d0)) udp_drops_target="$td"
}

bench_register() {
  local tool=$1 target=$3 k0 k1 l0 users d0 d1 td tname
  RATE=$2 N=$(($2 * SECS)) DIR="$OUT/raw/r$ROUND-register-$target-$2-$1"
  rm -rf "$DIR" && mkdir -p "$DIR"
  TARGET_PORT=$(free_udp_port)
  if [ "$target" = serve ]; then
    start_serve
    KAM_PID=$SERVE_PID tname="sipstorm serve --workers $SERVE_WORKERS"
  else
    start_kamailio "r$ROUND-register-$target-$RATE-$tool/kamailio" "$TARGET_PORT"
    tname="kamailio (${KAMAILIO_CHILDREN} UDP workers)"
  fi
  l0=$(loadavg)
  k0=$(proc_tree_cpu_s "$KAM_PID")
  d0=$(udp_drops_all)
  log "round $ROUND, register $RATE/s x ${SECS}s against $target: $tool (load $l0)"
  gen "$tool" register
  k1=$(proc_tree_cpu_s "$KAM_PID")
  d1=$(udp_drops_all)
  td=$(udp_drops_port "$TARGET_PORT")
  if [ "$target" = serve ]; then
    users=NA
    kill -TERM "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
  else
    users=$(kam_ul_stat registered_users)
    "$ROOT/scripts/kamailio/stop.sh" "$KAM_DIR" 2>/dev/null
  fi
  meta "$DIR" round="$ROUND" scenario=register tool="$tool" rate="$RATE" count="$N" secs="$SECS" workers="${WORKERS:-default}" \
    target_kind="$target" target="$tname" target_cpu_s="$(awk -v a="$k0" -v b="$k1" 'BEGIN { print b - a }')" \
    load_before="$l0" load_after="$(loadavg)" kamailio_registered_users="${users:-NA}" \
    udp_drops_machine=$((d1 - d0)) udp_drops_target="$td"
}

# --- the machine, before -------------------------------------------------
{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo
  echo "kernel: $(uname -srvm)"
  echo "load average before: $(loadavg)"
  echo "sipstorm: $("$BIN" --version) ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') $(git -C "$ROOT" rev-parse --abbrev-ref HEAD 2>/dev/null || true)), --workers ${WORKERS:-default} ${SIPSTORM_FLAGS:-}"
  [ -n "${SIPSTORM_OLD:-}" ] && echo "sipstorm-old: $("$SIPSTORM_OLD" --version) ($SIPSTORM_OLD)"
  echo "tools: $TOOLS"
  echo "sipp: $({ sipp -v 2>&1 || true; } | grep -m1 -o 'SIPp v[^ ]*'), -buff_size $SIPP_BUFF (UAC and UAS)"
  echo "net.core.rmem_max: $(cat /proc/sys/net/core/rmem_max), wmem_max: $(cat /proc/sys/net/core/wmem_max)"
  echo "kamailio: $(kamailio -v 2>&1 | head -n1), $KAMAILIO_CHILDREN UDP workers"
  echo "rates: calls '$RATES' against '$CALL_TARGETS', register '$REG_RATES' against '$REG_TARGETS', ${SECS}s each, $ROUNDS rounds, ONLY=$ONLY, floor=$FLOOR"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# --- the runs ------------------------------------------------------------
# ABBA: the tool that goes first changes from one rate to the next (and with
# an odd number of rates, from one round to the next).
i=0
pairs=()
if [ "$ONLY" != register ]; then for t in $CALL_TARGETS; do for rate in $RATES; do pairs+=("call:$rate:$t"); done; done; fi
if [ "$ONLY" != calls ]; then for t in $REG_TARGETS; do for rate in $REG_RATES; do pairs+=("register:$rate:$t"); done; done; fi
# The kernel floor of one call's datagrams at RATE/s (client thread CPU).
bench_floor() {
  local dir="$OUT/raw/r$ROUND-floor-$1"
  mkdir -p "$dir"
  log "round $ROUND, floor $1/s x ${SECS}s (load $(loadavg))"
  (cd "$ROOT" && cargo bench -q --bench floor -- --seconds "$SECS" "$1" 2>/dev/null) | grep '^{' >"$dir/floor.json"
  echo "{\"load_before\": \"$(loadavg)\"}" >"$dir/load.json"
}
for ROUND in $(seq 1 "$ROUNDS"); do
  if [ "$FLOOR" = 1 ] && [ "$ONLY" != register ]; then
    for rate in $RATES; do bench_floor "$rate"; done
  fi
  for pair in "${pairs[@]}"; do
    IFS=: read -r sc rate target <<<"$pair"
    read -r -a order <<<"$TOOLS"
    [ $((i % 2)) = 0 ] || read -r -a order <<<"$(printf '%s\n' $TOOLS | tac | xargs)"
    i=$((i + 1))
    for tool in "${order[@]}"; do "bench_$sc" "$tool" "$rate" "$target"; done
  done
done

# The wire check: one more call run per tool at WIRE_RATE, captured with
# tshark on lo, to see each tool's INVITE->200 against the kernel's packet
# timestamps. Not in the CPU table (the capture costs CPU on the same cores).
if [ "$ONLY" != register ] && [ "$WIRE_RATE" != 0 ]; then
  if command -v tshark >/dev/null 2>&1; then
    CAPTURE=1 ROUND=w
    for tool in $TOOLS; do [ "$tool" = sipstorm-old ] || bench_call "$tool" "$WIRE_RATE" sipp; done
    CAPTURE=0
  else
    log "tshark missing: no wire check"
  fi
fi

{
  echo "load average after: $(loadavg)"
  echo "busiest processes at the end (top -bn1):"
  top -bn1 -w 120 | sed -n '7,13p'
} >>"$OUT/machine.txt"

# --- the summary ---------------------------------------------------------
python3 - "$OUT" "$ROOT" <<'PY'
import csv, glob, gzip, json, math, os, sys

out, root = sys.argv[1], sys.argv[2]

def pct(sorted_vals, q):
    """Nearest-rank percentile of sorted samples (None when empty)."""
    if not sorted_vals:
        return None
    return sorted_vals[max(0, math.ceil(q / 100 * len(sorted_vals)) - 1)]

def sipp_last(path):
    """The last (cumulative) row of SIPp's -trace_stat file, as a dict."""
    rows = [r for r in csv.reader(open(path), delimiter=";") if len(r) > 1]
    return dict(zip(rows[0], rows[-1])) if len(rows) > 1 else {}

def sipp_rtd(d):
    """SIPp's RTD 1 samples (ms) from its -trace_rtt file(s) in run dir d
    (gzipped at the end of a run)."""
    for path in glob.glob(os.path.join(d, "*_rtt.csv")) + glob.glob(os.path.join(d, "*_rtt.csv.gz")):
        opener = gzip.open if path.endswith(".gz") else open
        for row in csv.reader(opener(path, "rt"), delimiter=";"):
            if len(row) >= 3 and row[2] == "1":
                yield float(row[1])

runs = []
wire_dirs = []
for d in sorted(glob.glob(os.path.join(out, "raw", "*-*-*"))):
    if not os.path.exists(os.path.join(d, "meta.json")):
        continue
    m = json.load(open(os.path.join(d, "meta.json")))
    if m["round"] == "w":
        wire_dirs.append((d, m))
        continue
    g = json.load(open(os.path.join(d, "gen.json"))) if os.path.exists(os.path.join(d, "gen.json")) else {}
    n = int(m["count"])
    r = dict(seq=int(m["seq"]), round=int(m["round"]), scenario=m["scenario"], target=m.get("target_kind", "sipp" if m["scenario"] == "call" else "kamailio"), tool=m["tool"], rate=int(m["rate"]), count=n, rc=g.get("rc"),
             timed_out=g.get("timed_out"), cpu_s=g.get("cpu_s"), user_s=g.get("user_s"),
             sys_s=g.get("sys_s"), wall_s=g.get("wall_s"), maxrss_kib=g.get("maxrss_kib"),
             target_cpu_s=float(m["target_cpu_s"]), load_before=m["load_before"],
             load_after=m["load_after"], nvcsw=g.get("nvcsw"),
             drops_machine=int(m["udp_drops_machine"]), drops_target=int(m["udp_drops_target"]), ok=0, retrans=None, p50_ms=None, p99_ms=None, samples=0,
             dir=os.path.relpath(d, out))
    if m["tool"].startswith("sipstorm"):
        rep_path = os.path.join(d, "sipstorm", "report.json")
        if os.path.exists(rep_path):
            rep = json.load(open(rep_path))
            t = rep["totals"]
            r["ok"] = t["call"]["completed"] if m["scenario"] == "call" else t["register"]["succeeded"]
            r["retrans"] = rep["messages"]["retransmitted"]
            h = rep["latency_ms"]["answer" if m["scenario"] == "call" else "rrd"]
            r.update(p50_ms=h["p50"], p99_ms=h["p99"], samples=h["count"])
            if m["scenario"] == "call":
                r["srd_p99_ms"] = rep["rfc6076"]["srd_ms"]["p99"]
            p = rep.get("process", {})
            r["self_cpu_s"] = p.get("cpu_total_s") or p.get("cpu_user_s", 0) + p.get("cpu_sys_s", 0)
            r["workers_started"] = rep.get("config", {}).get("workers")
            r["self_max_rss_kib"] = p.get("max_rss_kib")
    else:
        st_path = os.path.join(d, "sipp.stat.csv")
        if os.path.exists(st_path):
            st = sipp_last(st_path)
            r["ok"] = int(st.get("SuccessfulCall(C)", 0) or 0)
            r["retrans"] = int(st.get("Retransmissions(C)", 0) or 0)
            r["sipp_failed"] = int(st.get("FailedCall(C)", 0) or 0)
        vals = sorted(sipp_rtd(d))
        r.update(p50_ms=pct(vals, 50), p99_ms=pct(vals, 99), samples=len(vals))
    ok = r["ok"]
    r["failed"] = n - ok
    r["achieved_per_s"] = ok / r["wall_s"] if r["wall_s"] else None
    r["cpu_us_per_op"] = r["cpu_s"] / ok * 1e6 if ok and r["cpu_s"] is not None else None
    r["target_cpu_us_per_op"] = r["target_cpu_s"] / ok * 1e6 if ok else None
    runs.append(r)

order = {"call": 0, "register": 1}
TOOL_ORDER = ["sipstorm", "sipstorm-old", "sipp"]
runs.sort(key=lambda r: (order[r["scenario"]], r["target"], r["rate"], TOOL_ORDER.index(r["tool"]), r["round"]))

# The kernel floor per call rate: client CPU µs per call, every round.
floor = {}
for path in sorted(glob.glob(os.path.join(out, "raw", "r*-floor-*", "floor.json"))):
    for line in open(path):
        fl = json.loads(line)
        floor.setdefault(int(fl["rate"]), []).append(fl["cpu_us_per_call"])
floor_us = {rate: sorted(v)[len(v) // 2] for rate, v in floor.items()}
json.dump({"runs": runs, "floor_us_per_call": floor}, open(os.path.join(out, "runs.json"), "w"), indent=1)

def f(v, fmt):
    return "–" if v is None else format(v, fmt)

def lat(r, key):
    # SIPp's samples are whole milliseconds; sipstorm's have µs resolution.
    return f(r[key], ".0f" if r["tool"] == "sipp" else ".3f")

def tool_name(r):
    return {"sipstorm": "sipstorm", "sipstorm-old": "sipstorm (old build)"}.get(r["tool"], "SIPp")

def status(rs):
    bad = [f"r{r['round']} exit {r['rc']}{' (timed out)' if r['timed_out'] else ''}" for r in rs if r["rc"] not in (0, None)]
    return f" ({', '.join(bad)})" if bad else ""

# One row per (scenario, rate, tool): all rounds together. CPU per op and the
# ratio from the totals over the rounds; per-round values in parentheses.
groups = {}
for r in runs:
    groups.setdefault((r["scenario"], r["target"], r["rate"], r["tool"]), []).append(r)

def per_op(rs, key):
    ok = sum(r["ok"] for r in rs)
    vals = [r[key] for r in rs]
    return None if not ok or None in vals else sum(vals) / ok * 1e6

summary = [
    "| scenario | target | offered /s | tool | workers | ok / offered | failed | achieved /s | generator CPU µs per op (per round) | sipstorm ÷ SIPp CPU | × floor | peak RSS MiB | latency p50 ms | latency p99 ms | retrans | target CPU µs per op |",
    "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]
result_lines = []
for (sc, target, rate, tool), rs in groups.items():
    cpu = per_op(rs, "cpu_s")
    ratio = ""
    vs_floor = ""
    if sc == "call" and cpu is not None and floor_us.get(rate):
        vs_floor = f"{cpu / floor_us[rate]:.2f}×"
    if tool != "sipp":
        other = per_op(groups.get((sc, target, rate, "sipp"), []), "cpu_s")
        if cpu is not None and other:
            ratio = f"**{cpu / other:.2f}×**"
            result_lines.append(f"RESULT {sc} vs {target} {rate}/s: {tool}/SIPp generator CPU per op = {cpu / other:.2f} ({cpu:.1f} vs {other:.1f} µs){', ' + vs_floor + ' floor' if vs_floor else ''}")
    old_rs = groups.get((sc, target, rate, "sipstorm-old"), [])
    if tool == "sipstorm" and old_rs:
        old_cpu = per_op(old_rs, "cpu_s")
        p50 = lambda xs: sorted(x["p50_ms"] for x in xs if x["p50_ms"] is not None)
        new_p, old_p = p50(rs), p50(old_rs)
        if cpu is not None and old_cpu and new_p and old_p:
            result_lines.append(f"RESULT {sc} vs {target} {rate}/s: sipstorm vs the old build: CPU per op {cpu / old_cpu:.2f}× ({cpu:.1f} vs {old_cpu:.1f} µs); "
                                f"latency p50 median {new_p[len(new_p) // 2]:.3f} vs {old_p[len(old_p) // 2]:.3f} ms ({new_p[len(new_p) // 2] - old_p[len(old_p) // 2]:+.3f} ms)")
    workers = ",".join(sorted({str(r.get("workers_started") or "–") for r in rs})) if tool != "sipp" else "1"
    rounds = ", ".join(f(r["cpu_us_per_op"], ".1f") for r in rs)
    ach = [r["achieved_per_s"] for r in rs if r["achieved_per_s"] is not None]
    rss = [r["maxrss_kib"] for r in rs if r["maxrss_kib"]]
    summary.append(
        f"| {sc} | {target} | {rate:,} | {tool_name(rs[0])} | {workers} | {sum(r['ok'] for r in rs):,} / {sum(r['count'] for r in rs):,} | "
        f"{sum(r['failed'] for r in rs):,}{status(rs)} | {f(sum(ach) / len(ach) if ach else None, ',.0f')} | "
        f"{f(cpu, '.1f')} ({rounds}) | {ratio} | {vs_floor} | {f(max(rss) / 1024 if rss else None, '.1f')} | "
        f"{', '.join(lat(r, 'p50_ms') for r in rs)} | {', '.join(lat(r, 'p99_ms') for r in rs)} | "
        f"{sum(r['retrans'] or 0 for r in rs):,} | {f(per_op(rs, 'target_cpu_s'), '.0f')} |")

detail = [
    "| round | scenario | target | offered /s | tool | ok / offered | failed | exit | wall s | achieved /s | CPU s (user+sys) | CPU µs per op | voluntary ctx switches per op | peak RSS MiB | p50 ms | p99 ms | latency samples | retrans | UDP drops target / machine | target CPU s | load before | raw |",
    "|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
]
for r in sorted(runs, key=lambda r: r["seq"]):
    detail.append(
        f"| {r['round']} | {r['scenario']} | {r['target']} | {r['rate']:,} | {tool_name(r)} | {r['ok']:,} / {r['count']:,} | {r['failed']:,} | "
        f"{r['rc']} | {f(r['wall_s'], '.2f')} | {f(r['achieved_per_s'], ',.0f')} | {f(r['cpu_s'], '.3f')} | "
        f"{f(r['cpu_us_per_op'], '.1f')} | {f(r['nvcsw'] / r['ok'] if r['ok'] and r['nvcsw'] is not None else None, '.2f')} | "
        f"{f(r['maxrss_kib'] and r['maxrss_kib'] / 1024, '.1f')} | "
        f"{lat(r, 'p50_ms')} | {lat(r, 'p99_ms')} | {r['samples']:,} | {f(r['retrans'], ',')} | "
        f"{r['drops_target']:,} / {r['drops_machine']:,} | "
        f"{r['target_cpu_s']:.2f} | {r['load_before']} | `{r['dir']}` |")

# Wire check: INVITE -> first 200 (and -> first 18x/200, RFC 6076 SRD) per
# Call-ID from the capture's kernel timestamps, next to each tool's own value.
wire = []
if wire_dirs:
    import importlib.util
    spec = importlib.util.spec_from_file_location("capture_truth", os.path.join(root, "scripts", "capture-truth.py"))
    ct = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ct)
for d, m in sorted(wire_dirs, key=lambda dm: dm[1]["tool"] != "sipstorm"):
    pcap = os.path.join(d, "wire.pcapng")
    if not os.path.exists(pcap):
        continue
    port = int(m["target_port"])
    invite, answer, setup = {}, {}, {}
    for p in ct.read_capture(pcap, port):
        cid = p["call_id"]
        if p["to_server"] and p["method"] == "INVITE":
            invite.setdefault(cid, p["t"])
        elif p["from_server"] and p["cseq_method"] == "INVITE" and p["code"] is not None:
            if p["code"] == 200:
                answer.setdefault(cid, p["t"])
            if 180 <= p["code"] < 190 or p["code"] == 200:
                setup.setdefault(cid, p["t"])
    def dist(ends):
        v = sorted((ends[c] - invite[c]) * 1e3 for c in ends if c in invite)
        return dict(count=len(v), p50=ct.percentile(v, 0.5), p99=ct.percentile(v, 0.99))
    w = dict(tool=m["tool"], rate=int(m["rate"]), count=int(m["count"]), wire_answer=dist(answer), wire_srd=dist(setup))
    if m["tool"] == "sipstorm":
        rep = json.load(open(os.path.join(d, "sipstorm", "report.json")))
        w["own_answer"] = {k: rep["latency_ms"]["answer"][k] for k in ("count", "p50", "p99")}
        w["own_srd"] = {k: rep["latency_ms"]["srd"][k] for k in ("count", "p50", "p99")}
    else:
        vals = sorted(sipp_rtd(d))
        w["own_answer"] = dict(count=len(vals), p50=pct(vals, 50), p99=pct(vals, 99))
        w["own_srd"] = None
    json.dump(w, open(os.path.join(d, "wire.json"), "w"), indent=1)
    if os.environ.get("KEEP_PCAP") != "1":
        os.remove(pcap)
    wire.append(w)

def pair(x, fmt):
    return "–" if not x else f"{f(x['p50'], fmt)} / {f(x['p99'], fmt)}"

legend = """
Columns: *ok / offered* successful calls (INVITE 200, BYE 200) or registrations
(final 200) over attempts offered, all rounds; *failed* offered minus ok (exit
codes other than 0 noted); *achieved /s* successes / the generator's wall time
(process start to exit, so a run that waits for failing transactions to time
out shows a low rate), mean over rounds; *generator CPU µs per op* user+sys of
the generator process alone (wait4 rusage) / successes, over all rounds, each
round in parentheses; *sipstorm ÷ SIPp CPU* the ratio of those; *peak RSS* the
generator's ru_maxrss, highest round; *latency* each tool's own measurement,
per round: calls INVITE sent -> 200 received (sipstorm `latency_ms.answer`,
SIPp RTD 1 of `-sn uac` from `-trace_rtt`), registrations first REGISTER ->
final 200 including the 401 round trip (sipstorm RFC 6076 RRD, SIPp RTD 1 of
scripts/sipp/register.xml); SIPp's samples are whole milliseconds of its
clock tick, sipstorm's are µs; *retrans* requests the generator retransmitted;
*target CPU µs per op* CPU of `sipp -sn uas`, `sipstorm serve` or Kamailio
(all its processes) during the run / successes; *workers* the worker threads
sipstorm started (its default flags size them by the rate); *× floor* the
generator's CPU per call over the kernel floor at that rate (benches/floor.rs:
a minimal program moving the same call's datagrams, batched, one wake-up per
1 ms tick; median of the rounds).
"""
if floor_us:
    legend += "\nKernel floor, client CPU µs per call (every round): " + "; ".join(
        f"{rate:,}/s: {', '.join(f'{v:.1f}' for v in floor[rate])}" for rate in sorted(floor)) + "\n"
text = "\n".join(summary) + "\n" + legend
if wire:
    text += ("\nWire check (one more call run per tool, captured with tshark on lo; "
             "not in the CPU figures above):\n\n"
             "| tool | offered /s | calls | own INVITE→200 p50 / p99 ms | wire INVITE→200 p50 / p99 ms | "
             "own INVITE→18x/200 (SRD) p50 / p99 ms | wire INVITE→18x/200 p50 / p99 ms |\n"
             "|---|---:|---:|---:|---:|---:|---:|\n")
    for w in wire:
        name = "sipstorm" if w["tool"] == "sipstorm" else "SIPp"
        fmt = ".2f" if w["tool"] == "sipstorm" else ".0f"
        text += (f"| {name} | {w['rate']:,} | {w['wire_answer']['count']:,} | {pair(w['own_answer'], fmt)} | "
                 f"{pair(w['wire_answer'], '.2f')} | {pair(w['own_srd'], fmt)} | {pair(w['wire_srd'], '.2f')} |\n")
text += "\nEvery run, in the order they ran:\n\n" + "\n".join(detail) + "\n"
open(os.path.join(out, "table.md"), "w").write(text)
print("\n".join(summary))
print("\n".join(result_lines))
PY
# SIPp's per-call samples are the bulk of the raw data: keep them, compressed.
find "$OUT/raw" -name '*_rtt.csv' -exec gzip -9f {} +
log "done: $OUT/table.md"
