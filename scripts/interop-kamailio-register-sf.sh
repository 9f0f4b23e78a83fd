#!/usr/bin/env bash
# Issue 17, with real Kamailio: sipstorm runs SIPp's digest REGISTER scenario
# (scripts/sipp/register.xml: `recv 401 auth="true"`, then `[field2]`, the
# users file's `[authentication username=... password=...]`) with the users
# file SIPp uses (-inf scripts/sipp/users.csv), and the counts agree on both
# sides: sipstorm's report.json (scenario_file.calls, and the RFC 6076 view
# totals.register) and Kamailio's location table read with kamcmd.
#
# Usage: scripts/interop-kamailio-register-sf.sh [COUNT] [RATE]   (default 500 at 250/s)
. "$(dirname "$0")/interop-lib.sh"

COUNT=${1:-500}
RATE=${2:-250}
[ "$COUNT" -ge 1 ] && [ "$COUNT" -le 2000 ] || fail "COUNT must be 1..2000 (users.csv has 2000 users)"
need kamailio kamcmd python3
SIPSTORM=$(sipstorm_bin)

KPORT=$(free_udp_port)
start_kamailio kamailio "$KPORT"
log "kamailio on udp:127.0.0.1:$KPORT (pid $KAM_PID)"
SPORT=$(free_udp_port)
rc=0
# SIPp's own spellings: -sf, -inf, -m, -r (rewritten by sipstorm).
"$SIPSTORM" run --target "127.0.0.1:$KPORT" -sf "$SIPP_DIR/register.xml" \
  -inf "$SIPP_DIR/users.csv" -m "$COUNT" -r "$RATE" \
  --local-ip 127.0.0.1 --local-port "$SPORT" --workers 1 \
  --quiet --out "$WORK/run" >"$WORK/run.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$WORK/run.log" >&2; fail "sipstorm exited $rc"; }
get() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($1)" "$WORK/run/report.json"; }
ok=$(get "r['scenario_file']['calls']['succeeded']")
failed=$(get "r['scenario_file']['calls']['failed']")
reg=$(get "r['totals']['register']['succeeded']")
rrd=$(get "r['rfc6076']['rrd_ms']['count']")
c401=$(get "r['responses'].get('401', 0)")
log "sipstorm: calls succeeded=$ok failed=$failed; register.succeeded=$reg rrd.count=$rrd 401s=$c401"
[ "$ok" = "$COUNT" ] && [ "$failed" = 0 ] || fail "expected $COUNT successful scenario calls"
[ "$reg" = "$COUNT" ] && [ "$rrd" = "$COUNT" ] || fail "the RFC 6076 view did not count $COUNT registrations"
[ "$c401" = "$COUNT" ] || fail "expected one 401 per registration, got $c401"
for i in $(seq 0 $((COUNT - 1))); do printf 'u%04d\n' "$i"; done >"$WORK/aors.txt"
kam_check_bindings "$WORK/aors.txt" "@127.0.0.1:$SPORT" --exact || fail "Kamailio's location table does not show the expected bindings"
interop_pass "$COUNT digest registrations from register.xml with [authentication], $(kam_ul_stat registered_users) bindings in Kamailio"
