#!/usr/bin/env bash
# Issue 17, with real SIPp: SIPp's own embedded scenarios (exported with
# `sipp -sd NAME` into tests/sipp_scenarios/) run by sipstorm, in both roles,
# with the counts checked on both sides (sipstorm's report.json or serve's
# closing screen, SIPp's -trace_stat CSV).
#
#   1. sipstorm run --sf uac.xml      vs  sipp -sn uas
#   2. sipstorm run --sf regexp.xml   vs  sipp -sn uas
#   2b. sipstorm run --sf branchc.xml vs  sipp -sn branchs
#   3. sipp -sn uac                   vs  sipstorm serve --sf uas.xml
#   3b. sipp -sn branchc              vs  sipstorm serve --sf branchs.xml
#   4. sipstorm run --sf uac.xml      vs  sipstorm serve --sf uas.xml
#   5. sipstorm run --sf branchc.xml  vs  sipstorm serve --sf branchs.xml
#   6. sipstorm run --sf uac.xml      vs  sipstorm serve (the built-in UAS)
#   7. sipstorm run --sf uac_pcap.xml -> exit 2, "uac_pcap.xml:87: ... media is not supported"
#
# Usage: scripts/interop-sipp-scenarios.sh [COUNT] [RATE]   (default 200 at 100/s)
# Everything on 127.0.0.1; each run bounded by its count and SIPP_TIMEOUT.
. "$(dirname "$0")/interop-lib.sh"

COUNT=${1:-200}
RATE=${2:-100}
need sipp python3
SIPSTORM=$(sipstorm_bin)
SCEN="$ROOT/tests/sipp_scenarios"

# json FILE EXPR: a value of a report (python expression on `r`).
json() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"; }

# check_report DIR LABEL: every call succeeded, as many as COUNT.
check_report() {
  local dir=$1 label=$2 att ok failed
  att=$(json "$dir/report.json" "r['scenario_file']['calls']['attempted']")
  ok=$(json "$dir/report.json" "r['scenario_file']['calls']['succeeded']")
  failed=$(json "$dir/report.json" "r['scenario_file']['calls']['failed']")
  log "$label: sipstorm attempted=$att succeeded=$ok failed=$failed"
  [ "$att" = "$COUNT" ] && [ "$ok" = "$COUNT" ] && [ "$failed" = 0 ] ||
    fail "$label: expected $COUNT calls all succeeded (report $dir/report.json)"
}

# serve_sf NAME SCENARIO PORT: sipstorm serve --sf in the background (its
# closing screen in WORK/NAME.out); sets SERVE_PID.
serve_sf() {
  "$SIPSTORM" serve --sf "$2" --listen "127.0.0.1:$3" --workers 2 --quiet \
    >"$WORK/$1.out" 2>"$WORK/$1.err" &
  SERVE_PID=$!
  _interop_pids+=("$SERVE_PID")
  wait_udp_listen "$3" || fail "$1: serve did not listen on $3"
}

# stop_serve NAME: SIGINT, wait, and check its screen's call line.
stop_serve() {
  kill -INT "$SERVE_PID"
  wait "$SERVE_PID" || fail "$1: serve exited with an error"
  grep -q "calls: $COUNT incoming, $COUNT succeeded, 0 failed" "$WORK/$1.out" ||
    { cat "$WORK/$1.out" >&2; fail "$1: serve did not count $COUNT successful calls"; }
  log "$1: serve counted $COUNT incoming calls, all succeeded"
}

run_sf() { # NAME TARGET SCENARIO [ARGS...]
  local name=$1 target=$2 sf=$3
  shift 3
  "$SIPSTORM" run --target "$target" --sf "$sf" -m "$COUNT" -r "$RATE" \
    --quiet --out "$WORK/$name" "$@" >"$WORK/$name.log" 2>&1 ||
    { cat "$WORK/$name.log" >&2; fail "$name: sipstorm exited $?"; }
}

# 1, 2, 2b: sipstorm's UAC scenarios against SIPp's server scenarios.
for pair in "uac uas" "regexp uas" "branchc branchs"; do
  set -- $pair
  s=$1
  P=$(free_udp_port)
  start_sipp_bg "$2-$s" -sn "$2" -i 127.0.0.1 -p "$P" -m "$COUNT"
  wait_udp_listen "$P" || fail "sipp -sn $2 did not start"
  run_sf "$s-vs-sipp" "127.0.0.1:$P" "$SCEN/$s.xml"
  check_report "$WORK/$s-vs-sipp" "$s.xml vs sipp -sn $2"
  wait_bg "$BG_PID" || fail "sipp -sn $2 exited with an error"
  sok=$(sipp_stat "$2-$s" 'SuccessfulCall(C)')
  [ "$sok" = "$COUNT" ] || fail "$s.xml vs sipp -sn $2: SIPp counted $sok successful calls, not $COUNT"
  log "$s.xml vs sipp -sn $2: SIPp SuccessfulCall(C)=$sok"
done
json "$WORK/uac-vs-sipp/report.json" "r['totals']['call']['completed']" | grep -qx "$COUNT" ||
  fail "uac.xml: the RFC 6076 view (totals.call.completed) is not $COUNT"

# 3, 3b: SIPp's client scenarios against sipstorm's scenario servers.
for pair in "uac uas" "branchc branchs"; do
  set -- $pair
  P=$(free_udp_port)
  serve_sf "serve-$2" "$SCEN/$2.xml" "$P"
  rc=0
  run_sipp "$1-vs-serve" "127.0.0.1:$P" -sn "$1" -i 127.0.0.1 -m "$COUNT" -r "$RATE" || rc=$?
  [ "$rc" = 0 ] || { show_sipp_errors "$1-vs-serve"; fail "sipp -sn $1 vs serve --sf $2.xml: SIPp exit $rc"; }
  sok=$(sipp_stat "$1-vs-serve" 'SuccessfulCall(C)')
  [ "$sok" = "$COUNT" ] || fail "sipp -sn $1 vs serve --sf $2.xml: SIPp counted $sok successful calls"
  log "sipp -sn $1 vs serve --sf $2.xml: SIPp $(sipp_summary "$1-vs-serve")"
  sleep 4.5 # the server scenarios' timewait
  stop_serve "serve-$2"
done

# 4, 5: sipstorm against itself, scenario to scenario.
for pair in "uac uas" "branchc branchs"; do
  set -- $pair
  P=$(free_udp_port)
  serve_sf "serve-$2" "$SCEN/$2.xml" "$P"
  run_sf "$1-vs-$2" "127.0.0.1:$P" "$SCEN/$1.xml" --workers 1
  check_report "$WORK/$1-vs-$2" "$1.xml vs serve --sf $2.xml"
  sleep 4.5
  stop_serve "serve-$2"
done

# 6: against the built-in server.
P=$(free_udp_port)
"$SIPSTORM" serve --listen "127.0.0.1:$P" --workers 1 --quiet >"$WORK/builtin.out" 2>&1 &
BP=$!
_interop_pids+=("$BP")
wait_udp_listen "$P" || fail "serve did not start"
run_sf uac-vs-builtin "127.0.0.1:$P" "$SCEN/uac.xml"
check_report "$WORK/uac-vs-builtin" "uac.xml vs the built-in serve"
kill -INT "$BP"
wait "$BP" || true

# 7: media is refused before any traffic.
rc=0
"$SIPSTORM" run --target 127.0.0.1:9 --sf "$SCEN/uac_pcap.xml" --quiet >"$WORK/pcap.out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "uac_pcap.xml:87: .*media is not supported" "$WORK/pcap.out" ||
  { cat "$WORK/pcap.out" >&2; fail "uac_pcap.xml was not refused with exit 2 at line 87 (rc=$rc)"; }
log "uac_pcap.xml refused: $(cat "$WORK/pcap.out")"

interop_pass "SIPp scenarios in both roles, $COUNT calls each, counted on both sides"
