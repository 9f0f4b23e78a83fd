#!/usr/bin/env bash
# Interop proof, real programs only: SIPp registers users with digest auth at
# the project's Kamailio registrar, and Kamailio's own table shows the bindings.
#
#   1. start Kamailio (scripts/kamailio/start.sh) on a free udp 127.0.0.1 port
#   2. sipp -sf scripts/sipp/register.xml -inf scripts/sipp/users.csv
#      -m COUNT -r RATE                     -> every REGISTER 401 -> 200
#   3. kamcmd ul.dump (ctl socket)          -> exactly the COUNT expected AoRs,
#      each with a Contact at SIPp's socket
#   4. sipp register_wrong_password.xml      -> every wrong password rejected
#      (403/401), and the AoR count unchanged
#   5. stop Kamailio (also on failure, via the trap in interop-lib.sh)
#
# Usage: scripts/interop-kamailio-register-sipp.sh [COUNT] [RATE]
#   COUNT default 1000 (at most 2000, the users in users.csv), RATE default 500/s.
#   INTEROP_KEEP=1 keeps the logs (WORK dir is printed); they are always kept
#   on failure. Exit 0 only if every check passed.
. "$(dirname "$0")/interop-lib.sh"

COUNT=${1:-${REG_COUNT:-1000}}
RATE=${2:-${REG_RATE:-500}}
WRONG=${WRONG_COUNT:-20}
[ "$COUNT" -ge 1 ] && [ "$COUNT" -le 2000 ] || fail "COUNT must be 1..2000 (users.csv has 2000 users)"

need sipp kamailio kamcmd python3

KPORT=$(free_udp_port)
start_kamailio kamailio "$KPORT"
log "kamailio on udp:127.0.0.1:$KPORT (pid $KAM_PID, ctl $KAM_CTL)"

SPORT=$(free_udp_port)
cpu0=$(proc_tree_cpu_s "$KAM_PID")
log "sipp: $COUNT REGISTERs with digest at $RATE/s from 127.0.0.1:$SPORT"
rc=0
run_sipp register "127.0.0.1:$KPORT" -sf "$SIPP_DIR/register.xml" \
  -inf "$SIPP_DIR/users.csv" -i 127.0.0.1 -p "$SPORT" \
  -m "$COUNT" -r "$RATE" -l "${REG_LIMIT:-1000}" || rc=$?
cpu1=$(proc_tree_cpu_s "$KAM_PID")
summary=$(sipp_summary register)
log "sipp register: rc=$rc $summary; kamailio cpu $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{printf "%.2f", b-a}')s"
if [ "$rc" -ne 0 ]; then
  show_sipp_errors register
  fail "SIPp register run failed (exit $rc)"
fi
ok=$(sipp_stat register 'SuccessfulCall(C)')
failed=$(sipp_stat register 'FailedCall(C)')
[ "$ok" = "$COUNT" ] && [ "$failed" = 0 ] || fail "expected $COUNT successful registrations and 0 failed, got ok=$ok failed=$failed"

# Kamailio's side: the location table must hold exactly the users registered,
# each bound to SIPp's socket.
for i in $(seq 0 $((COUNT - 1))); do printf 'u%04d\n' "$i"; done >"$WORK/aors.txt"
kam_check_bindings "$WORK/aors.txt" "@127.0.0.1:$SPORT" --exact || fail "Kamailio's location table does not show the expected bindings"

# Wrong passwords must be rejected and must not add or change bindings.
WPORT=$(free_udp_port)
log "sipp: $WRONG REGISTERs with a wrong password"
rc=0
run_sipp wrong "127.0.0.1:$KPORT" -sf "$SIPP_DIR/register_wrong_password.xml" \
  -inf "$SIPP_DIR/users.csv" -i 127.0.0.1 -p "$WPORT" -m "$WRONG" -r 100 || rc=$?
log "sipp wrong-password: rc=$rc $(sipp_summary wrong)"
if [ "$rc" -ne 0 ]; then
  show_sipp_errors wrong
  fail "a wrong password was not rejected (SIPp exit $rc)"
fi
# Kamailio's answer to a wrong password is 403 (the scenario also accepts a
# fresh 401, which other registrars send): count the 403s on SIPp's screen.
n403=$(awk '$1 == "403" && $2 ~ /^<-/ { print $3; exit }' "$WORK/wrong.screen.log" 2>/dev/null)
[ "$n403" = "$WRONG" ] || fail "expected $WRONG x 403 for wrong passwords, SIPp saw '${n403:-none}'"
kam_check_bindings "$WORK/aors.txt" "@127.0.0.1:$SPORT" --exact || fail "a wrong-password REGISTER changed the bindings"
aors=$(kam_ul_stat registered_users)

{
  echo "count=$COUNT rate=$RATE"
  echo "register: $summary"
  echo "kamailio_cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{printf "%.2f", b-a}')"
  echo "kamailio registered_users=$aors contacts=$(kam_ul_stat location_contacts)"
  echo "wrong-password: $(sipp_summary wrong)"
} >"$WORK/result.txt"
[ -n "${INTEROP_RESULT:-}" ] && cp "$WORK/result.txt" "$INTEROP_RESULT"
interop_pass "$COUNT registrations via SIPp digest, $aors bindings in Kamailio, $WRONG wrong passwords rejected"
